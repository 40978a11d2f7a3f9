"""Sluice's event contract: CloudEvents envelopes around versioned payloads on `sluice.>` subjects."""

from libs.common.events.base import CloudEvent, ObjectRef, Payload, PayloadError, decode_payload, envelope
from libs.common.events.payloads import (
    ALL_PAYLOADS,
    PAYLOAD_BY_TYPE,
    ApplyDone,
    ArtifactReady,
    BuildFailed,
    BuildReady,
    Change,
    DeadLetter,
    EventRecord,
    GitCommit,
    ImageTag,
    ReconcileRequest,
)

__all__ = [
    "ALL_PAYLOADS",
    "PAYLOAD_BY_TYPE",
    "ApplyDone",
    "ArtifactReady",
    "BuildFailed",
    "BuildReady",
    "Change",
    "CloudEvent",
    "DeadLetter",
    "EventRecord",
    "GitCommit",
    "ImageTag",
    "ObjectRef",
    "Payload",
    "PayloadError",
    "ReconcileRequest",
    "decode_payload",
    "envelope",
]
