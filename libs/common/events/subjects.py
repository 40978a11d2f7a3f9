"""Subject builders: `sluice.<event>.<kind>.<namespace>.<name>`, lower case.

Kubernetes names may contain dots, which NATS reads as token separators; they are written as `_`
(a character Kubernetes names cannot hold), so the mapping is reversible.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.common import names


def _token(value: str) -> str:
    if not value:
        raise ValueError("subject tokens must not be empty")
    if any(c in value for c in " *>\t\r\n"):
        raise ValueError(f"{value!r} cannot be part of a NATS subject")
    return value.lower().replace(".", "_")


def _untoken(value: str) -> str:
    return value.replace("_", ".")


def subject(event: str, kind: str, namespace: str, name: str) -> str:
    """The subject an event about one object is published on."""
    return ".".join((names.SUBJECT_PREFIX, event, _token(kind), _token(namespace), _token(name)))


def family_filter(event: str, kind: str | None = None) -> str:
    """A wildcard filter for one event family, optionally narrowed to one kind."""
    parts = [names.SUBJECT_PREFIX, event]
    if kind is not None:
        parts.append(_token(kind))
    return ".".join(parts) + ".>"


def dead_letter_subject(consumer: str) -> str:
    return f"{names.SUBJECT_PREFIX}.{names.DEAD_LETTER}.{_token(consumer)}"


@dataclass(frozen=True)
class ObjectSubject:
    event: str
    kind: str
    namespace: str
    name: str


def parse(subject_: str) -> ObjectSubject:
    """Split an object subject back into its parts (the event may hold a dot: `artifact.ready`)."""
    parts = subject_.split(".")
    if len(parts) < 5 or parts[0] != names.SUBJECT_PREFIX:
        raise ValueError(f"not a sluice object subject: {subject_!r}")
    kind, namespace, name = parts[-3:]
    return ObjectSubject(".".join(parts[1:-3]), kind, _untoken(namespace), _untoken(name))
