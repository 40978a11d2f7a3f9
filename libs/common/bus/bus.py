"""JetStream publishing, durable pull consumers, per-object leases. See the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Tracer

from libs.common import names
from libs.common.events import CloudEvent, DeadLetter, Payload, PayloadError, decode_payload, envelope
from libs.common.events import subjects as subj
from libs.common.runtime.redact import redact_url

log = logging.getLogger("sluice.bus")

P = TypeVar("P", bound=Payload)


class StreamMisconfigured(RuntimeError):
    """The stream exists but does not hold Sluice's subjects; the message says how to fix it."""


class PublishError(RuntimeError):
    """JetStream did not acknowledge a publish within the deadline."""


class RetryLater(Exception):
    """Raised by a handler: hand the message back, deliver it again after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


class Permanent(Exception):
    """Raised by a handler: this message can never succeed; dead-letter it with the reason."""


class LockBusy(Exception):
    """Another replica holds the lease on this object right now."""


class BusMetrics(Protocol):
    """What the bus reports; libs.common.runtime.metrics.Metrics satisfies it."""

    def event_published(self, event: str, outcome: str) -> None: ...
    def event_consumed(self, event: str, outcome: str) -> None: ...
    def redelivered(self, event: str) -> None: ...
    def dead_lettered(self, event: str) -> None: ...


class _NoMetrics:
    def event_published(self, event: str, outcome: str) -> None:
        pass

    def event_consumed(self, event: str, outcome: str) -> None:
        pass

    def redelivered(self, event: str) -> None:
        pass

    def dead_lettered(self, event: str) -> None:
        pass


@dataclass
class Delivery:
    """One message as a handler sees it."""

    subject: str
    event: CloudEvent
    headers: Mapping[str, str]
    num_delivered: int
    stream_seq: int
    _msg: Msg = field(repr=False)

    @property
    def msg_id(self) -> str | None:
        return self.headers.get(names.HEADER_MSG_ID)

    async def in_progress(self) -> None:
        """Tell JetStream the work goes on (resets ack_wait). The bus also does this on a timer."""
        with contextlib.suppress(Exception):
            await self._msg.in_progress()


Handler = Callable[[P, Delivery], Awaitable[None]]


def _family(subject: str) -> str:
    try:
        return subj.parse(subject).event
    except ValueError:
        return subject.split(".")[1] if "." in subject else subject


def _default_backoff(attempt: int) -> float:
    """Delay before redelivery after a failed attempt: 0.5 s doubling to 30 s, with jitter."""
    return float(min(30.0, 0.5 * 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.2))


@dataclass
class Subscription(Generic[P]):
    """A durable pull consumer and the loop that feeds its handler."""

    bus: Bus
    durable: str
    filter_subject: str
    model: type[P]
    handler: Handler[P]
    concurrency: int = 4
    ack_wait: float = 15.0
    max_deliver: int = 10
    fetch_timeout: float = 2.0
    backoff: Callable[[int], float] = _default_backoff
    _task: asyncio.Task[None] | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _bound: bool = False
    _stopping: bool = False
    _sub: JetStreamContext.PullSubscription | None = None

    @property
    def healthy(self) -> bool:
        """True while the pull loop is bound and fetching (a lost server makes it False until re-bound)."""
        return self._task is not None and not self._task.done() and self._bound

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            filter_subject=self.filter_subject,
            max_ack_pending=max(1000, self.concurrency * 4),
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"bus-consumer-{self.durable}")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop fetching, let in-flight handlers finish within `grace`, hand the rest back."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _bind(self) -> JetStreamContext.PullSubscription:
        js = self.bus.js
        try:
            await js.add_consumer(self.bus.stream, self.consumer_config())
        except nats.js.errors.BadRequestError as exc:
            # An existing durable with another configuration (an older version of us): keep it.
            log.warning(
                "consumer %s exists with a different configuration: %s", self.durable, exc.description
            )
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    async def _run(self) -> None:
        try:
            await self._pull()
        finally:
            if self._sub is not None:
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
                self._sub = None

    async def _pull(self) -> None:
        sub: JetStreamContext.PullSubscription | None = None
        failures = 0
        while not self._stopping:
            try:
                if sub is None:
                    await self.bus.ensure_stream()
                    sub = self._sub = await self._bind()
                    self._bound = True
                    failures = 0
                free = self.concurrency - len(self._inflight)
                if free <= 0:
                    await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(batch=free, timeout=self.fetch_timeout)
                except TimeoutError:
                    # An empty pull is not an error. nats-py raises its own TimeoutError or, from
                    # some paths, the builtin one (asyncio's); both mean "nothing arrived".
                    msgs = []
                self._bound = True
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg), name=f"bus-handle-{self.durable}")
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Server restart, lost consumer, closed connection: re-bind after a pause.
                self._bound = False
                failures += 1
                log.warning("consumer %s lost its subscription (%r); re-binding", self.durable, exc)
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = self._sub = None
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))

    async def _handle(self, msg: Msg) -> None:
        family = _family(msg.subject)
        metrics = self.bus.metrics
        headers = dict(msg.headers or {})
        meta = msg.metadata
        num = meta.num_delivered or 1
        if num > 1:
            metrics.redelivered(family)
        parent = extract(headers)
        token = otel_context.attach(parent)
        heartbeat = asyncio.create_task(self._heartbeat(msg), name=f"bus-heartbeat-{self.durable}")
        try:
            with self.bus.tracer.start_as_current_span(
                f"{family} process",
                kind=SpanKind.CONSUMER,
                attributes={"messaging.destination": msg.subject, "messaging.consumer": self.durable},
            ):
                try:
                    event = CloudEvent.from_bytes(msg.data)
                    payload = decode_payload(event, self.model)
                    delivery = Delivery(msg.subject, event, headers, num, meta.sequence.stream, msg)
                    await self.handler(payload, delivery)
                except RetryLater as retry:
                    metrics.event_consumed(family, "retry")
                    await msg.nak(delay=retry.delay)
                    return
                except (Permanent, PayloadError) as exc:
                    metrics.event_consumed(family, "rejected")
                    await self._dead_letter(msg, str(exc), num)
                    await msg.term()
                    return
                except asyncio.CancelledError:
                    # Shutting down mid-work: hand the message back to another replica at once.
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    raise
                except Exception as exc:
                    log.exception(
                        "handler for %s failed (delivery %d of %d)", msg.subject, num, self.max_deliver
                    )
                    if num >= self.max_deliver:
                        metrics.event_consumed(family, "dead_letter")
                        await self._dead_letter(msg, f"{type(exc).__name__}: {exc}", num)
                        await msg.term()
                    else:
                        metrics.event_consumed(family, "error")
                        await msg.nak(delay=self.backoff(num))
                    return
                metrics.event_consumed(family, "ok")
                await msg.ack()
        except Exception:
            log.exception("could not settle message on %s; JetStream will redeliver it", msg.subject)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            otel_context.detach(token)

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _dead_letter(self, msg: Msg, reason: str, deliveries: int) -> None:
        self.bus.metrics.dead_lettered(_family(msg.subject))
        headers = dict(msg.headers or {})
        record = DeadLetter(
            consumer=self.durable,
            subject=msg.subject,
            reason=reason,
            deliveries=deliveries,
            msg_id=headers.get(names.HEADER_MSG_ID),
            type=headers.get(names.HEADER_CE_TYPE),
            data=msg.data[:65536].decode("utf-8", "replace"),
        )
        log.error("dead-lettering %s from %s: %s", msg.subject, self.durable, reason)
        try:
            await self.bus.js.publish(
                subj.dead_letter_subject(self.durable),
                record.model_dump_json(by_alias=True).encode(),
                headers={names.HEADER_MSG_ID: f"dl-{self.durable}-{msg.metadata.sequence.stream}"},
            )
        except Exception:
            log.exception("could not record the dead letter for %s", msg.subject)


@dataclass(frozen=True)
class Stored(Generic[P]):
    """A payload read back from the stream, with its sequence (newer = larger) and event time."""

    payload: P
    seq: int
    time: datetime


@dataclass
class Lease:
    """A per-object lease in the `sluice-locks` KV bucket, refreshed while held."""

    key: str
    revision: int


class Bus:
    """A connection to NATS with JetStream; one per service process."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        source: str,
        replica_id: str,
        stream: str = names.STREAM_NAME,
        metrics: BusMetrics | None = None,
        tracer: Tracer | None = None,
        lock_ttl: float = 30.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.source = source
        self.replica_id = replica_id
        self.stream = stream
        self.metrics: BusMetrics = metrics or _NoMetrics()
        self.tracer = tracer or trace.get_tracer("sluice.bus")
        self.lock_ttl = lock_ttl
        self._subs: list[Subscription[Any]] = []
        self._kv: KeyValue | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        service: str,
        replica_id: str = "",
        stream: str = names.STREAM_NAME,
        metrics: BusMetrics | None = None,
        tracer: Tracer | None = None,
        connect_timeout: float = 30.0,
        lock_ttl: float = 30.0,
        user: str | None = None,
        password: str | None = None,
    ) -> Bus:
        """Connect (retrying until `connect_timeout`), then make sure the stream exists.

        `user`/`password` authenticate as one of the per-service NATS users that deploy/k8s/nats
        configures, each limited to the subjects its service publishes and consumes."""
        deadline = time.monotonic() + connect_timeout
        where = ",".join(redact_url(server) for server in url.split(","))
        last_error: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            last_error[:] = [exc]
            await _log_error(exc)

        while True:
            try:
                # nats.py keeps retrying a server that refuses the credentials (it reconnects
                # forever), so the deadline bounds the attempt itself, not just the retries.
                async with asyncio.timeout(max(deadline - time.monotonic(), 2.0)):
                    nc = await nats.connect(
                        url,
                        name=f"sluice-{service}",
                        user=user,
                        password=password,
                        # Replies to an authenticated user land under its own prefix, which its
                        # NATS permissions alone may subscribe to: no service reads another's.
                        inbox_prefix=f"_INBOX_{user}" if user else "_INBOX",
                        connect_timeout=2,
                        reconnect_time_wait=0.25,
                        max_reconnect_attempts=-1,
                        allow_reconnect=True,
                        error_cb=on_error,
                        disconnected_cb=_log_disconnected,
                        reconnected_cb=_log_reconnected,
                    )
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    reason = last_error[0] if isinstance(exc, TimeoutError) and last_error else exc
                    raise ConnectionError(f"cannot reach NATS at {where}: {reason}") from None
                await asyncio.sleep(0.25)
        bus = cls(
            nc,
            source=f"/sluice/{service}",
            replica_id=replica_id or service,
            stream=stream,
            metrics=metrics,
            tracer=tracer,
            lock_ttl=lock_ttl,
        )
        try:
            await bus.ensure_stream()
        except BaseException:
            await nc.close()
            raise
        return bus

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    def ready(self) -> bool:
        """Connected, and every consumer is pulling."""
        return self.connected and all(s.healthy for s in self._subs)

    async def ensure_stream(self) -> None:
        """Create the one stream that holds `sluice.>` when it does not exist; idempotent across
        replicas. An existing stream is left as it is: an operator may have tuned its limits
        (`nats stream edit`), and deploy/k8s's NATS users may look at the stream but not change it.
        A stream that does not capture `sluice.>` cannot carry Sluice's events: that is an error
        that says so, not something to overwrite."""
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            info = None
        if info is None:
            config = StreamConfig(
                name=self.stream,
                subjects=[names.STREAM_SUBJECTS],
                storage=StorageType.FILE,
                max_age=7 * 24 * 3600,
                max_bytes=2 * 1024**3,
                discard=DiscardPolicy.OLD,
                duplicate_window=120,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Another replica created it between our look and our create (or it exists with
                # another config, which the look below reports).
                info = await self.js.stream_info(self.stream)
        if info is not None and names.STREAM_SUBJECTS not in (info.config.subjects or []):
            raise StreamMisconfigured(
                f"JetStream stream {self.stream} holds {info.config.subjects}, not "
                f"{names.STREAM_SUBJECTS!r}: add that subject to it (nats stream edit {self.stream}) "
                "or point SLUICE_STREAM at another stream"
            )

    async def publish(self, payload: Payload, *, msg_id: str | None = None, timeout: float = 10.0) -> int:
        """Publish a payload in its CloudEvent envelope; returns the stream sequence.

        `msg_id` de-duplicates within the stream's window (two replicas publishing the same
        reconcile request produce one message); it is sent as `<event family>:<msg_id>`, so ids
        only need to be unique within one family. Retries through a NATS restart until `timeout`.
        """
        event = envelope(payload, source=self.source)
        subject = event.subject
        family = _family(subject)
        # JetStream de-duplicates ids across the whole stream, not per subject: prefixing the
        # family keeps one publisher's `GitRepository/ns/app@<sha>` from swallowing another's.
        headers = {
            names.HEADER_MSG_ID: f"{payload.EVENT}:{msg_id or event.id}",
            names.HEADER_CE_TYPE: event.type,
        }
        with self.tracer.start_as_current_span(
            f"{family} publish", kind=SpanKind.PRODUCER, attributes={"messaging.destination": subject}
        ):
            inject(headers)
            data = event.to_bytes()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    ack = await self.js.publish(subject, data, headers=headers, stream=self.stream, timeout=2)
                except (
                    nats.errors.TimeoutError,
                    nats.js.errors.NoStreamResponseError,
                    nats.errors.ConnectionClosedError,
                    nats.errors.OutboundBufferLimitError,
                    nats.js.errors.ServiceUnavailableError,
                ) as exc:
                    if time.monotonic() > deadline:
                        self.metrics.event_published(family, "error")
                        raise PublishError(
                            f"no acknowledgement for {subject}: {type(exc).__name__}"
                        ) from None
                    await asyncio.sleep(0.2)
                    continue
                self.metrics.event_published(family, "duplicate" if ack.duplicate else "ok")
                return int(ack.seq)

    async def last(self, subject: str, model: type[P]) -> P | None:
        """The payload of the newest message on `subject` still in the stream, or None.

        The stream doubles as the shared record of the latest event per object (for example the
        newest `build.ready` of a Kustomization), the same for every replica.
        """
        entry = await self.last_entry(subject, model)
        return entry.payload if entry else None

    async def last_entry(self, subject: str, model: type[P]) -> Stored[P] | None:
        """Like `last`, with the stream sequence and time, to tell which of two subjects is newer."""
        try:
            raw = await self.js.get_last_msg(self.stream, subject)
        except nats.js.errors.NotFoundError:
            return None
        if raw.data is None:
            return None
        event = CloudEvent.from_bytes(raw.data)
        return Stored(decode_payload(event, model), int(raw.seq or 0), event.time)

    async def follow(
        self,
        subject_filter: str,
        model: type[P],
        *,
        deliver_new_only: bool = True,
        since: datetime | None = None,
    ) -> AsyncGenerator[tuple[P, datetime], None]:
        """Yield (payload, event time) for messages on `subject_filter`, in stream order, forever.

        An ephemeral ordered consumer (no acks, nothing left behind): for observers such as
        `sluice events`. By default only messages published from now on; `since` replays from
        that time; `deliver_new_only=False` replays everything still in the stream. Messages that
        do not decode as `model` are skipped.
        """
        config = ConsumerConfig()
        if since is not None:
            policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = since.astimezone(UTC)
        else:
            policy = DeliverPolicy.NEW if deliver_new_only else DeliverPolicy.ALL
        sub = await self.js.subscribe(
            subject_filter,
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            inactive_threshold=300.0,
        )
        try:
            async for msg in sub.messages:
                try:
                    event = CloudEvent.from_bytes(msg.data)
                    payload = decode_payload(event, model)
                except (PayloadError, ValueError) as exc:
                    log.debug("follow %s: skipping %s: %s", subject_filter, msg.subject, exc)
                    continue
                yield payload, event.time
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def subscribe(
        self,
        durable: str,
        filter_subject: str,
        model: type[P],
        handler: Handler[P],
        *,
        concurrency: int = 4,
        ack_wait: float = 15.0,
        max_deliver: int = 10,
        fetch_timeout: float = 2.0,
    ) -> Subscription[P]:
        """Start a durable pull consumer; every replica calling this with the same durable shares it."""
        sub: Subscription[P] = Subscription(
            self,
            durable,
            filter_subject,
            model,
            handler,
            concurrency=concurrency,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            fetch_timeout=fetch_timeout,
        )
        sub.start()
        self._subs.append(sub)
        return sub

    async def _locks(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(names.LOCK_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self.js.create_key_value(
                    KeyValueConfig(
                        bucket=names.LOCK_BUCKET, history=1, ttl=self.lock_ttl, storage=StorageType.FILE
                    )
                )
        return self._kv

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[Lease]:
        """Hold the lease on `key` (an object) across all replicas, or raise LockBusy at once.

        The lease expires by itself `lock_ttl` seconds after its holder stops refreshing it (a
        replica that died), so work is never stuck behind a dead owner for long.
        """
        kv = await self._locks()
        kv_key = key.replace(":", "=").replace(" ", "_")
        try:
            rev = await kv.create(kv_key, self.replica_id.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            raise LockBusy(key) from None
        lease = Lease(kv_key, rev)

        async def refresh() -> None:
            while True:
                await asyncio.sleep(self.lock_ttl / 3)
                with contextlib.suppress(Exception):
                    lease.revision = await kv.update(kv_key, self.replica_id.encode(), last=lease.revision)

        refresher = asyncio.create_task(refresh(), name=f"lease-{kv_key}")
        try:
            yield lease
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(Exception):
                await kv.delete(kv_key, last=lease.revision)

    async def close(self, grace: float = 10.0) -> None:
        """Stop consumers (in-flight work finishes or is handed back), then drain the connection."""
        await asyncio.gather(*(s.stop(grace) for s in self._subs))
        self._subs.clear()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), timeout=5)
            if not self.nc.is_closed:
                await self.nc.close()


async def _log_error(exc: Exception) -> None:
    log.debug("nats: %s", exc)


async def _log_disconnected() -> None:
    log.warning("nats: disconnected")


async def _log_reconnected() -> None:
    log.info("nats: reconnected")
