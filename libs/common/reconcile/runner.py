"""A reconciler is a short ordered list of small async steps plus one summarize step.

Steps share one signature, `async def step(ctx) -> Result | None`: returning None moves on to the
next step, returning a Result ends the run. Steps set only their own conditions (`FetchFailed`,
`BuildFailed` …). `summarize` alone derives Ready/Reconciling/Stalled, sets observedGeneration and
lastHandledReconcileAt, writes the status and emits the event — so status and the event stream
never disagree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from libs.common.api import meta
from libs.common.api.meta import FluxObject
from libs.common.events import EventRecord, ObjectRef

log = logging.getLogger("sluice.reconcile")

T = TypeVar("T", bound=FluxObject)


@dataclass(frozen=True)
class Result:
    """How a run ended.

    - `ready`: the object reached its desired state (Ready=True with `reason`/`message`).
    - `progressing`: waiting on something that will change (a dependency, a rollout); Ready=False,
      Reconciling=True, asked again after `requeue_after`.
    - `failed`: a failure that may heal (retried after `requeue_after`, or the backoff); with
      `stalled=True` it cannot heal without a spec change (Stalled=True, no retry).
    """

    state: Literal["ready", "progressing", "failed"]
    reason: str
    message: str
    requeue_after: float | None = None
    stalled: bool = False
    severity: Literal["info", "error", "trace"] | None = None

    @classmethod
    def ready(cls, message: str, reason: str = meta.SUCCEEDED) -> Result:
        return cls("ready", reason, message)

    @classmethod
    def progressing(
        cls, message: str, *, reason: str = meta.PROGRESSING, after: float | None = None
    ) -> Result:
        return cls("progressing", reason, message, requeue_after=after)

    @classmethod
    def failed(cls, reason: str, message: str, *, after: float | None = None) -> Result:
        return cls("failed", reason, message, requeue_after=after)

    @classmethod
    def stall(cls, reason: str, message: str) -> Result:
        return cls("failed", reason, message, stalled=True)


@dataclass
class Emitter:
    """Where events go: the bus (for notify and subscribers) and, if given, Kubernetes Events."""

    publish: Callable[[EventRecord], Awaitable[None]]
    controller: str
    instance: str | None = None


@dataclass
class Context(Generic[T]):
    """What every step of one reconcile run sees."""

    obj: T
    log: logging.LoggerAdapter[logging.Logger]
    trigger: str = "changed"
    # Event metadata the summarize step attaches (`<group>/revision` …), filled by steps.
    revision: str | None = None
    event_metadata: dict[str, str] = field(default_factory=dict)
    # Events steps want to emit besides the summary (e.g. `NewArtifact`).
    extra_events: list[tuple[str, str, str]] = field(default_factory=list)
    # Set by a step when the run found nothing to do (the no-op path): no event is emitted.
    unchanged: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def status(self) -> Any:
        return getattr(self.obj, "status", None)

    def set_condition(self, type: str, status: str, reason: str, message: str) -> None:
        st = self.status
        st.conditions = meta.set_condition(st.conditions, type, status, reason, message, self.obj.generation)

    def remove_condition(self, type: str) -> None:
        st = self.status
        st.conditions = meta.remove_condition(st.conditions, type) or None

    def condition(self, type: str) -> meta.Condition | None:
        return meta.get_condition(self.status.conditions if self.status else None, type)

    def event(self, reason: str, message: str, severity: Literal["info", "error"] = "info") -> None:
        self.extra_events.append((reason, message, severity))


Step = Callable[[Context[T]], Awaitable[Result | None]]


@dataclass
class Reconciler(Generic[T]):
    """The steps for one kind. `finalize` steps run when the object is being deleted."""

    kind: type[T]
    steps: Sequence[Step[T]]
    finalize: Sequence[Step[T]] = ()
    default_retry: float = 30.0

    async def run(self, ctx: Context[T]) -> Result:
        for step in self.steps:
            try:
                result = await step(ctx)
            except Exception as exc:
                # An unexpected failure is a failed run with the error as its message, never a crash.
                ctx.log.exception("step %s raised", getattr(step, "__name__", step))
                return Result.failed(meta.RECONCILIATION_FAILED, f"{type(exc).__name__}: {exc}")
            if result is not None:
                return result
        return Result.ready("reconciliation succeeded")


def summarize(ctx: Context[Any], result: Result) -> None:
    """Derive Ready/Reconciling/Stalled, observedGeneration and lastHandledReconcileAt from the result."""
    gen = ctx.obj.generation
    if result.state == "ready":
        ctx.set_condition(meta.READY, meta.CONDITION_TRUE, result.reason, result.message)
        ctx.remove_condition(meta.RECONCILING)
        ctx.remove_condition(meta.STALLED)
        ctx.status.observed_generation = gen
    elif result.state == "progressing":
        ctx.set_condition(meta.READY, meta.CONDITION_FALSE, result.reason, result.message)
        ctx.set_condition(meta.RECONCILING, meta.CONDITION_TRUE, meta.PROGRESSING, result.message)
        ctx.remove_condition(meta.STALLED)
    elif result.stalled:
        ctx.set_condition(meta.READY, meta.CONDITION_FALSE, result.reason, result.message)
        ctx.set_condition(meta.STALLED, meta.CONDITION_TRUE, result.reason, result.message)
        ctx.remove_condition(meta.RECONCILING)
        ctx.status.observed_generation = gen
    else:
        ctx.set_condition(meta.READY, meta.CONDITION_FALSE, result.reason, result.message)
        ctx.set_condition(meta.RECONCILING, meta.CONDITION_TRUE, meta.PROGRESSING_WITH_RETRY, result.message)
        ctx.remove_condition(meta.STALLED)
    requested = (ctx.obj.metadata.annotations or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)
    if requested is not None and hasattr(ctx.status, "last_handled_reconcile_at"):
        ctx.status.last_handled_reconcile_at = requested


def status_json(obj: FluxObject) -> dict[str, Any]:
    status = getattr(obj, "status", None)
    if status is None:
        return {}
    dumped: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def _ready_signature(status: Mapping[str, Any]) -> tuple[str, str, str] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == meta.READY:
            return (str(cond.get("status")), str(cond.get("reason")), str(cond.get("message")))
    return None


def events_for(
    ctx: Context[Any], result: Result, before: Mapping[str, Any], after: Mapping[str, Any], emitter: Emitter
) -> list[EventRecord]:
    """The events a run emits: the extra ones its steps asked for, plus the summary when the
    Ready condition changed (a failure is repeated on every run, as Flux does; notify de-duplicates)."""
    obj = ctx.obj
    ref = ObjectRef(
        api_version=obj.api_version(),
        kind=obj.KIND,
        namespace=obj.namespace,
        name=obj.name,
        uid=obj.metadata.uid,
    )
    metadata = dict(ctx.event_metadata)
    if ctx.revision:
        metadata.setdefault(f"{obj.GROUP}/revision", ctx.revision)
    for key, value in (obj.metadata.annotations or {}).items():
        if key.startswith(meta.EVENT_ANNOTATION_PREFIX):
            metadata.setdefault(key, value)
    now = datetime.now(UTC)
    records = [
        EventRecord(
            involved_object=ref,
            severity=severity,  # type: ignore[arg-type]
            timestamp=now,
            message=message,
            reason=reason,
            metadata=metadata,
            reporting_controller=emitter.controller,
            reporting_instance=emitter.instance,
        )
        for reason, message, severity in ctx.extra_events
    ]
    changed = _ready_signature(before) != _ready_signature(after)
    severity = result.severity or ("info" if result.state != "failed" else "error")
    if (changed or result.state == "failed") and not ctx.unchanged:
        records.append(
            EventRecord(
                involved_object=ref,
                severity=severity,
                timestamp=now,
                message=result.message,
                reason=result.reason,
                metadata=metadata,
                reporting_controller=emitter.controller,
                reporting_instance=emitter.instance,
            )
        )
    return records
