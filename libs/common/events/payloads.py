"""The payloads of every event family (public contract: docs/events.md, schemas in docs/events/)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from libs.common import names
from libs.common.events.base import Model, ObjectRef, Payload


class ArtifactReady(Payload):
    """source → build: a source object has a new artifact (new revision or new digest)."""

    EVENT: ClassVar[str] = names.ARTIFACT_READY

    source: ObjectRef
    revision: str
    digest: str
    url: str
    path: str
    size: int | None = None
    origin_revision: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def subject_ref(self) -> ObjectRef:
        return self.source


class BuildReady(Payload):
    """build → apply: a Kustomization rendered at a source revision into a stored bundle."""

    EVENT: ClassVar[str] = names.BUILD_READY

    kustomization: ObjectRef
    source: ObjectRef
    revision: str
    generation: int
    digest: str
    url: str
    object_count: int
    source_digest: str | None = None
    """Digest of the source artifact the bundle was rendered from (optional, added in place)."""

    def subject_ref(self) -> ObjectRef:
        return self.kustomization


class BuildFailed(Payload):
    """build → apply: rendering failed; the message names the file and line where known."""

    EVENT: ClassVar[str] = names.BUILD_FAILED

    kustomization: ObjectRef
    source: ObjectRef
    revision: str
    generation: int
    reason: str
    message: str
    source_digest: str | None = None
    """Digest of the source artifact the failed build used, when there was one (optional, added in place)."""

    def subject_ref(self) -> ObjectRef:
        return self.kustomization


class Change(Model):
    """One line of an apply change set: `Deployment/apps/web configured`."""

    kind: str
    namespace: str | None = None
    name: str
    action: Literal["created", "configured", "unchanged", "deleted", "skipped"]


class ApplyDone(Payload):
    """apply → anyone: a Kustomization (or HelmRelease) finished applying a revision."""

    EVENT: ClassVar[str] = names.APPLY_DONE

    object: ObjectRef
    revision: str
    ready: bool
    reason: str
    message: str
    changes: list[Change] = Field(default_factory=list)

    def subject_ref(self) -> ObjectRef:
        return self.object


class ImageTag(Payload):
    """image-scan → image-update: an ImagePolicy selected a different image."""

    EVENT: ClassVar[str] = names.IMAGE_TAG

    policy: ObjectRef
    image: str
    tag: str
    digest: str | None = None
    previous_tag: str | None = None

    def subject_ref(self) -> ObjectRef:
        return self.policy

    @property
    def ref(self) -> str:
        ref = f"{self.image}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


class GitCommit(Payload):
    """image-update (or a Git webhook) → source: a commit was pushed to a repository's branch."""

    EVENT: ClassVar[str] = names.GIT_COMMIT

    repository: ObjectRef
    branch: str
    commit: str
    revision: str
    author: ObjectRef | None = None

    def subject_ref(self) -> ObjectRef:
        return self.repository


ReconcileReason = Literal[
    "created", "changed", "requested", "interval", "retry", "dependency", "deleted", "startup", "receiver"
]


class ReconcileRequest(Payload):
    """anyone → the owning service: reconcile this object now.

    The publisher sets `Nats-Msg-Id` to the object plus what triggered it (its generation and
    requestedAt, or the interval slot), so N replicas watching the same object publish one request.
    """

    EVENT: ClassVar[str] = names.RECONCILE_REQUEST

    object: ObjectRef
    reason: ReconcileReason
    generation: int | None = None
    requested_at: str | None = None

    def subject_ref(self) -> ObjectRef:
        return self.object


class EventRecord(Payload):
    """Flux's event model (fluxcd/pkg apis/event/v1beta1), one per state change, for notify and subscribers."""

    EVENT: ClassVar[str] = names.EVENT_RECORD

    involved_object: ObjectRef
    severity: Literal["info", "error", "trace"]
    timestamp: datetime
    message: str = Field(max_length=39_000)
    reason: str
    metadata: dict[str, str] = Field(default_factory=dict)
    reporting_controller: str
    reporting_instance: str | None = None

    def subject_ref(self) -> ObjectRef:
        return self.involved_object


class DeadLetter(Model):
    """What the bus records on `sluice.deadletter.<consumer>` when it gives up on a message."""

    consumer: str
    subject: str
    reason: str
    deliveries: int
    msg_id: str | None = None
    type: str | None = None
    data: str = ""


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    ArtifactReady,
    BuildReady,
    BuildFailed,
    ApplyDone,
    ImageTag,
    GitCommit,
    ReconcileRequest,
    EventRecord,
)
PAYLOAD_BY_TYPE: dict[str, type[Payload]] = {p.type_name(): p for p in ALL_PAYLOADS}
