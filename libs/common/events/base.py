"""The CloudEvents 1.0 envelope and the base of every versioned payload.

Payloads are frozen pydantic models. Readers ignore unknown fields, so a payload may grow new
optional fields in place; anything that breaks readers gets a new `type` version instead.
"""

from __future__ import annotations

import json
import uuid
from abc import abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from libs.common import names
from libs.common.events import subjects


class PayloadError(ValueError):
    """A message whose envelope or payload does not validate; it is dead-lettered, never retried."""


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, alias_generator=to_camel)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectRef(Model):
    """Names one Kubernetes object (Flux's involvedObject shape)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.key


class Payload(Model):
    """A versioned event payload; `EVENT` is its family, `VERSION` its schema version."""

    EVENT: ClassVar[str]
    VERSION: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return f"{names.EVENT_TYPE_PREFIX}.{cls.EVENT}.v{cls.VERSION}"

    @abstractmethod
    def subject_ref(self) -> ObjectRef:
        """The object whose subject this payload is published on."""

    def subject(self) -> str:
        ref = self.subject_ref()
        return subjects.subject(self.EVENT, ref.kind, ref.namespace, ref.name)


class CloudEvent(Model):
    """CloudEvents 1.0 structured-mode JSON envelope. Field names follow the spec (no camel case)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    specversion: str = names.CLOUDEVENTS_SPEC_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise PayloadError(f"invalid CloudEvent envelope: {_brief(exc)}") from None


def envelope(payload: Payload, *, source: str, event_id: str | None = None) -> CloudEvent:
    """Wrap a payload for publishing; `source` is the publishing service (`/sluice/source`)."""
    return CloudEvent(
        id=event_id or uuid.uuid4().hex,
        source=source,
        type=payload.type_name(),
        subject=payload.subject(),
        data=payload.to_json_dict(),
    )


def _brief(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


P = TypeVar("P", bound=Payload)


def decode_payload(event: CloudEvent, model: type[P]) -> P:
    """Validate the envelope's data as `model`, raising PayloadError with the failing fields."""
    if event.type != model.type_name():
        raise PayloadError(f"event type {event.type!r} is not {model.type_name()!r}")
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise PayloadError(f"invalid {event.type} payload: {_brief(exc)}") from None
