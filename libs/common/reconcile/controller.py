"""Turns Kubernetes state into reconcile runs, across any number of replicas.

- The watcher lists and watches one kind and publishes a `reconcile.request` when an object
  appears, its generation or `reconcile.fluxcd.io/requestedAt` changes, or its deletion starts.
  The request's `Nats-Msg-Id` names the object and that trigger, so N replicas publish one message.
- The scheduler publishes interval requests at `spec.interval` (± a jitter derived from the
  object's uid, identical on every replica) with `Nats-Msg-Id` = object + time slot; retries after
  failures are scheduled the same way.
- One durable consumer per kind, shared by all replicas, receives the requests. A per-object lease
  in NATS KV keeps two replicas from reconciling one object at once; a request for an object this
  replica is already reconciling is folded into one more run after the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from pydantic import ValidationError

from libs.common import names
from libs.common.api import meta
from libs.common.api.duration import parse_duration
from libs.common.api.meta import FluxObject
from libs.common.api.validation import error_lines
from libs.common.bus import Bus, Delivery, LockBusy, RetryLater
from libs.common.events import EventRecord, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import Gone, Kube, KubeError, NotFound
from libs.common.reconcile.runner import (
    Context,
    Emitter,
    Reconciler,
    Result,
    events_for,
    status_json,
    summarize,
)
from libs.common.runtime.logging import bind

log = logging.getLogger("sluice.controller")

T = TypeVar("T", bound=FluxObject)

ObserveFn = Callable[[str, str, float], None]
REQUESTED_FALLBACK_DELAY = 0.2
GaugeFn = Callable[[str, str, float], None]


def object_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def request_msg_id(key: str, generation: int | None, requested_at: str | None, deleting: bool) -> str:
    """The de-duplication id of a watch-triggered request: the object and what triggered it."""
    trigger = f"g{generation}"
    if requested_at:
        trigger += f"-r{hashlib.sha1(requested_at.encode()).hexdigest()[:12]}"
    if deleting:
        trigger += "-d"
    return f"{key}@{trigger}"


def interval_phase(uid: str, interval: float, jitter: float) -> float:
    """A per-object offset inside the interval, the same on every replica (spreads the load)."""
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return (digest / 2**64) * interval * max(jitter, 0.0)


@dataclass(order=True)
class _Timer:
    due: float
    key: str = field(compare=False)
    reason: str = field(compare=False)
    msg_id: str = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class _Pending:
    """A request that arrived while its object was being reconciled here: one more run follows."""

    request: ReconcileRequest
    context: otel_context.Context


@dataclass
class _Watched:
    generation: int | None
    requested_at: str | None
    deleting: bool
    uid: str
    interval: float | None


@dataclass
class Controller(Generic[T]):
    """Reconciles one kind for one service."""

    reconciler: Reconciler[T]
    kube: Kube
    bus: Bus
    service: str
    namespace: str | None = None
    concurrency: int = 4
    jitter: float = 0.05
    observe: ObserveFn | None = None
    objects_gauge: GaugeFn | None = None
    record_kube_events: bool = True
    lease_wait: float = 3.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _seen: dict[str, _Watched] = field(default_factory=dict)
    _timers: list[_Timer] = field(default_factory=list)
    _timer_by_key: dict[str, _Timer] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _running: dict[str, _Pending | None] = field(default_factory=dict)
    _retries: dict[str, int] = field(default_factory=dict)
    _readiness: dict[str, str] = field(default_factory=dict)
    _delayed: set[asyncio.Task[None]] = field(default_factory=set)
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def kind(self) -> type[T]:
        return self.reconciler.kind

    @property
    def durable(self) -> str:
        return f"{self.service}-reconcile-{self.kind.KIND.lower()}"

    @property
    def field_manager(self) -> str:
        return f"{names.STATUS_FIELD_MANAGER_PREFIX}{self.service}"

    async def start(self) -> None:
        self.bus.subscribe(
            self.durable,
            subj.family_filter(names.RECONCILE_REQUEST, self.kind.KIND),
            ReconcileRequest,
            self.handle,
            concurrency=self.concurrency,
            max_deliver=100,
        )
        self._tasks.append(asyncio.create_task(self._watch_loop(), name=f"watch-{self.kind.KIND}"))
        self._tasks.append(asyncio.create_task(self._schedule_loop(), name=f"schedule-{self.kind.KIND}"))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._delayed]:
            task.cancel()
        for task in [*self._tasks, *self._delayed]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- producing requests -------------------------------------------------------------------

    def _ref(self, namespace: str, name: str, uid: str | None = None) -> ObjectRef:
        return ObjectRef(
            api_version=self.kind.api_version(), kind=self.kind.KIND, namespace=namespace, name=name, uid=uid
        )

    async def request(
        self,
        namespace: str,
        name: str,
        reason: str,
        msg_id: str,
        *,
        generation: int | None = None,
        requested_at: str | None = None,
    ) -> None:
        payload = ReconcileRequest(
            object=self._ref(namespace, name),
            reason=reason,  # type: ignore[arg-type]
            generation=generation,
            requested_at=requested_at,
        )
        await self.bus.publish(payload, msg_id=msg_id)

    def _count(self, key: str, ready: str | None) -> None:
        """Keep the `sluice_objects{kind, ready}` gauge in step with what the watch sees."""
        before = self._readiness.pop(key, None)
        if ready is not None:
            self._readiness[key] = ready
        if self.objects_gauge is None or before == ready:
            return
        for state in {before, ready} - {None}:
            count = sum(1 for v in self._readiness.values() if v == state)
            self.objects_gauge(self.kind.KIND, str(state), float(count))

    async def _observe(self, raw: dict[str, Any], startup: bool) -> None:
        md = raw.get("metadata") or {}
        ns, name = md.get("namespace", ""), md.get("name", "")
        key = object_key(self.kind.KIND, ns, name)
        conditions = (raw.get("status") or {}).get("conditions") or []
        ready = next(
            (c.get("status", "Unknown") for c in conditions if c.get("type") == meta.READY), "Unknown"
        )
        self._count(key, ready)
        gen = md.get("generation")
        requested = (md.get("annotations") or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)
        deleting = bool(md.get("deletionTimestamp"))
        spec = raw.get("spec") or {}
        interval: float | None = None
        with contextlib.suppress(Exception):
            interval = parse_duration(spec["interval"]) if spec.get("interval") else None
        prev = self._seen.get(key)
        now = _Watched(gen, requested, deleting, md.get("uid", ""), interval)
        self._seen[key] = now
        if prev is not None and (prev.generation, prev.requested_at, prev.deleting) == (
            gen,
            requested,
            deleting,
        ):
            if prev.interval != interval:
                self._arm_interval(key, now)
            return
        reason = "startup" if startup else ("created" if prev is None else "changed")
        if requested is not None and prev is not None and prev.requested_at != requested:
            reason = "requested"
        if deleting:
            reason = "deleted"
        publish = self.request(
            ns,
            name,
            reason,
            request_msg_id(key, gen, requested, deleting),
            generation=gen,
            requested_at=requested,
        )
        if reason == "requested":
            # Clients that ask directly (a Receiver, the CLI) publish this very id themselves, inside
            # their own trace; the watcher's copy is the fallback for annotate-only clients, so it
            # goes out a moment later and loses the de-duplication race to them.
            self._later(REQUESTED_FALLBACK_DELAY, publish)
        else:
            await publish
        self._arm_interval(key, now)

    def _later(self, delay: float, publish: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                publish.close()  # stopping before it was sent: never awaited, so close it
                raise
            try:
                await publish
            except Exception as exc:
                log.warning("could not publish a reconcile request: %s", exc)

        task = asyncio.create_task(run(), name=f"later-{self.kind.KIND}")
        self._delayed.add(task)
        task.add_done_callback(self._delayed.discard)

    async def _watch_loop(self) -> None:
        api_version, kind = self.kind.api_version(), self.kind.KIND
        while True:
            try:
                items, rv = await self.kube.list_objects(api_version, kind, self.namespace)
                present = set()
                for raw in items:
                    md = raw["metadata"]
                    present.add(object_key(kind, md.get("namespace", ""), md["name"]))
                    await self._observe(raw, startup=not self.synced.is_set())
                for key in set(self._seen) - present:
                    self._forget(key)
                self.synced.set()
                while True:
                    async for ev in self.kube.watch(api_version, kind, self.namespace, resource_version=rv):
                        md = ev.object.get("metadata") or {}
                        rv = md.get("resourceVersion", rv)
                        if ev.type == "BOOKMARK":
                            continue
                        if ev.type == "DELETED":
                            self._forget(object_key(kind, md.get("namespace", ""), md.get("name", "")))
                            continue
                        await self._observe(ev.object, startup=False)
            except asyncio.CancelledError:
                raise
            except Gone:
                continue  # history expired: list again
            except Exception as exc:
                log.warning("watch of %s failed (%s); re-listing", kind, exc)
                await asyncio.sleep(1.0)

    def _forget(self, key: str) -> None:
        self._count(key, None)
        self._seen.pop(key, None)
        self._cancel_timer(key)
        self._retries.pop(key, None)

    # --- timers -------------------------------------------------------------------------------

    def _cancel_timer(self, key: str) -> None:
        timer = self._timer_by_key.pop(key, None)
        if timer is not None:
            timer.cancelled = True

    def _arm(self, key: str, due_wall: float, reason: str, msg_id: str) -> None:
        self._cancel_timer(key)
        timer = _Timer(time.monotonic() + max(0.0, due_wall - time.time()), key, reason, msg_id)
        self._timer_by_key[key] = timer
        heapq.heappush(self._timers, timer)
        self._wake.set()

    def _arm_interval(self, key: str, watched: _Watched) -> None:
        if not watched.interval or watched.interval <= 0:
            self._cancel_timer(key)
            return
        interval = watched.interval
        phase = interval_phase(watched.uid or key, interval, self.jitter)
        slot = math.floor((time.time() - phase) / interval) + 1
        due = slot * interval + phase
        self._arm(key, due, "interval", f"{key}@i{slot}")

    def schedule_retry(self, key: str, after: float) -> None:
        attempt = self._retries.get(key, 0) + 1
        self._retries[key] = attempt
        jittered = after * random.uniform(1.0, 1.0 + self.jitter)
        # Only the replica that ran the reconcile schedules its retry, so the id must be unique,
        # never shared with an earlier retry another replica scheduled.
        self._arm(key, time.time() + jittered, "retry", f"{key}@retry-{attempt}-{uuid.uuid4().hex[:12]}")

    async def _schedule_loop(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            while self._timers and (self._timers[0].cancelled or self._timers[0].due <= now):
                timer = heapq.heappop(self._timers)
                if timer.cancelled:
                    continue
                self._timer_by_key.pop(timer.key, None)
                _kind, ns, name = timer.key.split("/", 2)
                try:
                    await self.request(ns, name, timer.reason, timer.msg_id)
                except Exception as exc:
                    log.warning("could not publish the %s request for %s: %s", timer.reason, timer.key, exc)
                watched = self._seen.get(timer.key)
                if timer.reason == "interval" and watched is not None:
                    self._arm_interval(timer.key, watched)
            delay = (self._timers[0].due - time.monotonic()) if self._timers else 3600.0
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
            # arrives as the wake-up does, and this loop would then outlive the service's stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, delay)):
                    await self._wake.wait()

    # --- handling requests --------------------------------------------------------------------

    async def handle(self, request: ReconcileRequest, delivery: Delivery) -> None:
        ref = request.object
        key = object_key(self.kind.KIND, ref.namespace, ref.name)
        log.debug(
            "request %s for %s (delivery %d, replica %s)",
            delivery.msg_id,
            key,
            delivery.num_delivered,
            self.bus.replica_id,
        )
        if key in self._running:
            # Already reconciling here: fold this request into one more run afterwards, which runs
            # in this (the latest) request's trace.
            self._running[key] = _Pending(request, otel_context.get_current())
            return
        deadline = time.monotonic() + self.lease_wait
        while True:
            try:
                async with self.bus.lease(key):
                    self._running[key] = None
                    try:
                        await self.reconcile(ref.namespace, ref.name, request)
                        while (pending := self._running[key]) is not None:
                            self._running[key] = None
                            token = otel_context.attach(pending.context)
                            try:
                                await self.reconcile(ref.namespace, ref.name, pending.request)
                            finally:
                                otel_context.detach(token)
                    finally:
                        self._running.pop(key, None)
                return
            except LockBusy:
                # Another replica is reconciling this object. Most runs are short: wait for the
                # lease here rather than hand the message back, which costs a pull cycle.
                if time.monotonic() >= deadline:
                    raise RetryLater(f"{key} is being reconciled by another replica", delay=0.5) from None
                await asyncio.sleep(0.02)

    def _stale(self, obj: T, request: ReconcileRequest) -> bool:
        """A repeated watch-triggered request for a state already handled and Ready is a no-op."""
        if request.reason not in ("created", "changed"):
            return False
        status = getattr(obj, "status", None)
        if status is None or request.generation is None:
            return False
        ready = meta.get_condition(obj.get_conditions(), meta.READY)
        requested = (obj.metadata.annotations or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)
        return (
            ready is not None
            and ready.status == meta.CONDITION_TRUE
            and status.observed_generation >= request.generation
            and getattr(status, "last_handled_reconcile_at", None) == requested
        )

    async def reconcile(
        self, namespace: str, name: str, request: ReconcileRequest | None = None
    ) -> Result | None:
        """One reconcile run of one object (the caller holds its lease). Returns None when skipped.

        The run is one span (`reconcile <Kind>`), a child of whatever triggered it, so the events
        it publishes continue the same trace into the next service.
        """
        attributes = {
            "sluice.kind": self.kind.KIND,
            "sluice.namespace": namespace,
            "sluice.name": name,
            "sluice.trigger": request.reason if request else "direct",
        }
        with self.bus.tracer.start_as_current_span(
            f"reconcile {self.kind.KIND}", attributes=attributes
        ) as span:
            result = await self._reconcile(namespace, name, request)
            if result is not None:
                span.set_attribute("sluice.result", result.state)
                span.set_attribute("sluice.reason", result.reason)
            return result

    async def _reconcile(self, namespace: str, name: str, request: ReconcileRequest | None) -> Result | None:
        kind = self.kind
        raw = await self.kube.get(kind.api_version(), kind.KIND, name, namespace)
        if raw is None:
            return None
        key = object_key(kind.KIND, namespace, name)
        logger = bind(log, kind=kind.KIND, namespace=namespace, name=name)
        try:
            obj = kind.model_validate(raw)
        except ValidationError as exc:
            return await self._invalid(raw, exc, logger)
        if request is not None and self._stale(obj, request):
            logger.debug("no change since the last reconcile")
            return None
        md = obj.metadata
        if md.deletion_timestamp:
            await self._finalize(obj, logger)
            return None
        if obj.suspended:
            logger.info("reconciliation is suspended")
            return None
        if kind.STATUS_SUBRESOURCE and meta.FINALIZER not in (md.finalizers or []):
            await self._add_finalizer(obj)
        before = status_json(obj)
        ctx: Context[T] = Context(obj=obj, log=logger, trigger=request.reason if request else "direct")
        started = time.monotonic()
        result = await self.reconciler.run(ctx)
        if kind.STATUS_SUBRESOURCE:
            summarize(ctx, result)
            after = status_json(obj)
            if after != before:
                try:
                    await self.kube.patch_status(
                        kind.api_version(),
                        kind.KIND,
                        name,
                        namespace,
                        after,
                        field_manager=self.field_manager,
                        previous=before,
                    )
                except NotFound:
                    return None
        else:
            after = before
        for record in events_for(ctx, result, before, after, self._emitter()):
            await self._emit(record)
        elapsed = time.monotonic() - started
        if self.observe is not None:
            self.observe(kind.KIND, "success" if result.state == "ready" else result.state, elapsed)
        self._after(key, result, obj)
        logger.info("reconciled in %.3fs: %s (%s)", elapsed, result.reason, result.message)
        return result

    def _after(self, key: str, result: Result, obj: T) -> None:
        if result.state == "ready":
            self._retries.pop(key, None)
            watched = self._seen.get(key)
            if watched is not None:
                self._arm_interval(key, watched)
            return
        if result.stalled:
            self._cancel_timer(key)
            return
        after = result.requeue_after
        if after is None:
            spec = getattr(obj, "spec", None)
            period = getattr(spec, "retry_interval", None) or getattr(spec, "interval", None)
            if isinstance(period, str):
                with contextlib.suppress(ValueError):
                    after = parse_duration(period)
        if after is None:
            after = self.reconciler.default_retry
        self.schedule_retry(key, after)

    async def _invalid(
        self, raw: dict[str, Any], exc: ValidationError, logger: logging.LoggerAdapter[Any]
    ) -> Result:
        """A spec the models reject stalls with a message naming the fields (the CRD let it through)."""
        kind = self.kind
        md = raw.get("metadata") or {}
        problems = "; ".join(error_lines(exc)[:10])
        message = f"invalid {kind.KIND} {md.get('namespace')}/{md.get('name')}: {problems}"
        logger.error(message)
        result = Result.stall("InvalidSpec", message)
        if kind.STATUS_SUBRESOURCE:
            conditions = meta.set_condition(
                None, meta.READY, meta.CONDITION_FALSE, "InvalidSpec", message, md.get("generation")
            )
            conditions = meta.set_condition(
                conditions, meta.STALLED, meta.CONDITION_TRUE, "InvalidSpec", message, md.get("generation")
            )
            status = {
                "observedGeneration": md.get("generation", -1),
                "conditions": [
                    c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in conditions
                ],
            }
            with contextlib.suppress(KubeError):
                await self.kube.patch_status(
                    kind.api_version(),
                    kind.KIND,
                    md["name"],
                    md.get("namespace"),
                    status,
                    field_manager=self.field_manager,
                )
        await self._emit(
            EventRecord(
                involved_object=self._ref(md.get("namespace", ""), md.get("name", ""), md.get("uid")),
                severity="error",
                timestamp=datetime.now(UTC),
                message=message,
                reason="InvalidSpec",
                reporting_controller=self._emitter().controller,
                reporting_instance=self.bus.replica_id,
            )
        )
        return result

    async def _add_finalizer(self, obj: T) -> None:
        finalizers = [*(obj.metadata.finalizers or []), meta.FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": obj.metadata.resource_version}}
        updated = await self.kube.patch(
            obj.api_version(),
            obj.KIND,
            obj.name,
            patch,
            namespace=obj.namespace,
            field_manager=self.field_manager,
        )
        obj.metadata.finalizers = finalizers
        obj.metadata.resource_version = updated["metadata"]["resourceVersion"]

    async def _finalize(self, obj: T, logger: logging.LoggerAdapter[Any]) -> None:
        if meta.FINALIZER not in (obj.metadata.finalizers or []):
            return
        ctx: Context[T] = Context(obj=obj, log=logger, trigger="deleted")
        for step in self.reconciler.finalize:
            result = await step(ctx)
            if result is not None and result.state != "ready":
                logger.warning("finalizer step did not complete: %s", result.message)
                self.schedule_retry(
                    object_key(obj.KIND, obj.namespace, obj.name), result.requeue_after or 5.0
                )
                return
        remaining = [f for f in obj.metadata.finalizers or [] if f != meta.FINALIZER]
        patch = {
            "metadata": {"finalizers": remaining or None, "resourceVersion": obj.metadata.resource_version}
        }
        with contextlib.suppress(NotFound):
            await self.kube.patch(
                obj.api_version(),
                obj.KIND,
                obj.name,
                patch,
                namespace=obj.namespace,
                field_manager=self.field_manager,
            )
        logger.info("finalized")

    # --- events -------------------------------------------------------------------------------

    def _emitter(self) -> Emitter:
        return Emitter(publish=self._emit, controller=f"sluice-{self.service}", instance=self.bus.replica_id)

    async def _emit(self, record: EventRecord) -> None:
        try:
            await self.bus.publish(record)
        except Exception as exc:
            log.warning("could not publish event %s: %s", record.reason, exc)
        if self.record_kube_events and record.severity != "trace":
            await self._kube_event(record)

    async def _kube_event(self, record: EventRecord) -> None:
        ref = record.involved_object
        stamp = record.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{ref.name}.",
                "namespace": ref.namespace,
                "annotations": {k: v for k, v in record.metadata.items()},
            },
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                **({"uid": ref.uid} if ref.uid else {}),
            },
            "reason": record.reason,
            "message": record.message[:32768],
            "type": "Warning" if record.severity == "error" else "Normal",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": record.reporting_controller},
            "reportingComponent": record.reporting_controller,
            "reportingInstance": record.reporting_instance or "",
        }
        try:
            await self.kube.create(event)
        except Exception as exc:
            log.debug("could not record a Kubernetes Event for %s: %s", ref.key, exc)
