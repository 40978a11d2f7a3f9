"""Every Sluice transport name that crosses a process boundary, in one place.

Subjects, the stream, headers, field managers, labels and annotations are part of Sluice's public
contract (docs/events.md); handlers never spell them as string literals. Flux's own API names (annotations, finalizer, condition
types and reasons) live with the API models in `libs.common.api.meta`.
"""

from __future__ import annotations

from typing import Final

# --- NATS JetStream -------------------------------------------------------------------------------
SUBJECT_PREFIX: Final = "sluice"
STREAM_NAME: Final = "SLUICE"
STREAM_SUBJECTS: Final = f"{SUBJECT_PREFIX}.>"
LOCK_BUCKET: Final = "sluice-locks"
EVENT_TYPE_PREFIX: Final = "io.sluice"
CLOUDEVENTS_SPEC_VERSION: Final = "1.0"

# Event families: the <event> part of `sluice.<event>.<kind>.<namespace>.<name>`.
ARTIFACT_READY: Final = "artifact.ready"
BUILD_READY: Final = "build.ready"
BUILD_FAILED: Final = "build.failed"
APPLY_DONE: Final = "apply.done"
IMAGE_TAG: Final = "image.tag"
GIT_COMMIT: Final = "git.commit"
RECONCILE_REQUEST: Final = "reconcile.request"
EVENT_RECORD: Final = "event"
DEAD_LETTER: Final = "deadletter"

# Headers.
HEADER_MSG_ID: Final = "Nats-Msg-Id"
HEADER_TRACEPARENT: Final = "traceparent"
HEADER_TRACESTATE: Final = "tracestate"
HEADER_CE_TYPE: Final = "ce-type"

# --- Kubernetes ------------------------------------------------------------------------------------
FIELD_MANAGER: Final = "sluice"
STATUS_FIELD_MANAGER_PREFIX: Final = "sluice-"

SERVICES: Final = ("source", "build", "apply", "image_scan", "image_update", "notify")
