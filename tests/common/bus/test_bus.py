"""The bus against a real nats-server: publish/dedup, shared consumers, the outcome→ack table,
dead letters, leases, trace propagation, surviving a server restart, handing back work on stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from libs.common import names
from libs.common.bus import Bus, Delivery, LockBusy, Permanent, RetryLater, StreamMisconfigured
from libs.common.events import ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.devservers.nats import NatsServer
from tests.support import eventually

pytestmark = pytest.mark.integration

FILTER = subj.family_filter(names.RECONCILE_REQUEST, "GitRepository")


def request(n: int, name: str = "app") -> ReconcileRequest:
    ref = ObjectRef(
        api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace="ns", name=name
    )
    return ReconcileRequest(object=ref, reason="changed", generation=n)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_url, service="test-a", replica_id="a")
    yield b
    await b.close(grace=1)


@pytest.fixture
async def bus2(nats_url: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_url, service="test-b", replica_id="b")
    yield b
    await b.close(grace=1)


async def raw_messages(url: str, subject: str, count: int) -> list[nats.aio.msg.Msg]:
    """Read `count` messages from the stream on `subject` with an ephemeral consumer.

    A pull fetch returns as soon as *some* messages are there, so keep pulling
    until `count` have arrived (or the fetch times out and the test fails).
    """
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().pull_subscribe(subject, stream=names.STREAM_NAME)
        msgs: list[nats.aio.msg.Msg] = []
        while len(msgs) < count:
            msgs.extend(await sub.fetch(count - len(msgs), timeout=5))
        return msgs
    finally:
        await nc.close()


async def test_publish_wraps_payload_in_a_cloudevent_with_msg_id(bus: Bus, nats_url: str) -> None:
    seq = await bus.publish(request(1), msg_id="GitRepository/ns/app@g1")
    assert seq >= 1
    [msg] = await raw_messages(nats_url, "sluice.reconcile.request.>", 1)
    assert msg.subject == "sluice.reconcile.request.gitrepository.ns.app"
    assert msg.headers[names.HEADER_MSG_ID] == "reconcile.request:GitRepository/ns/app@g1"
    body = json.loads(msg.data)
    assert body["specversion"] == "1.0"
    assert body["type"] == "io.sluice.reconcile.request.v1"
    assert body["source"] == "/sluice/test-a"
    assert body["data"]["object"]["kind"] == "GitRepository"
    assert body["data"]["generation"] == 1


async def test_same_msg_id_is_stored_once(bus: Bus, bus2: Bus) -> None:
    first = await bus.publish(request(1), msg_id="same")
    second = await bus2.publish(request(1), msg_id="same")
    assert first == second
    info = await bus.js.stream_info(names.STREAM_NAME)
    assert info.state.messages == 1


async def test_replicas_share_a_durable_and_each_message_is_handled_once(bus: Bus, bus2: Bus) -> None:
    handled: dict[str, list[int]] = {"a": [], "b": []}

    def handler(who: str) -> Callable[[ReconcileRequest, Delivery], Awaitable[None]]:
        async def handle(req: ReconcileRequest, _: Delivery) -> None:
            await asyncio.sleep(0.005)
            handled[who].append(req.generation or 0)

        return handle

    bus.subscribe("shared", FILTER, ReconcileRequest, handler("a"))
    bus2.subscribe("shared", FILTER, ReconcileRequest, handler("b"))
    for n in range(60):
        await bus.publish(request(n, name=f"o{n}"))
    await eventually(lambda: len(handled["a"]) + len(handled["b"]) >= 60)
    await asyncio.sleep(0.3)  # nothing more may arrive
    together = handled["a"] + handled["b"]
    assert sorted(together) == list(range(60)), "every message exactly once across the replicas"
    assert handled["a"] and handled["b"], "both replicas took a share"


async def test_retry_later_redelivers_after_the_delay(bus: Bus) -> None:
    attempts: list[int] = []

    async def handle(req: ReconcileRequest, d: Delivery) -> None:
        attempts.append(d.num_delivered)
        if d.num_delivered < 3:
            raise RetryLater("not yet", delay=0.05)

    bus.subscribe("retry", FILTER, ReconcileRequest, handle)
    await bus.publish(request(1))
    await eventually(lambda: len(attempts) >= 3)
    await asyncio.sleep(0.3)
    assert attempts == [1, 2, 3]


async def dead_letters(url: str, durable: str, count: int) -> list[dict[str, object]]:
    msgs = await raw_messages(url, subj.dead_letter_subject(durable), count)
    return [json.loads(m.data) for m in msgs]


async def test_permanent_failure_is_dead_lettered_with_the_reason(bus: Bus, nats_url: str) -> None:
    calls: list[int] = []

    async def handle(req: ReconcileRequest, d: Delivery) -> None:
        calls.append(d.num_delivered)
        raise Permanent("the spec can never work")

    bus.subscribe("perm", FILTER, ReconcileRequest, handle)
    await bus.publish(request(1), msg_id="m-perm")
    [record] = await dead_letters(nats_url, "perm", 1)
    assert record["reason"] == "the spec can never work"
    assert record["consumer"] == "perm"
    assert record["msgId"] == "reconcile.request:m-perm"
    assert calls == [1], "terminated, not redelivered"


async def test_invalid_payload_is_dead_lettered_not_crashing(bus: Bus, nats_url: str) -> None:
    seen: list[ReconcileRequest] = []

    async def handle(req: ReconcileRequest, _: Delivery) -> None:
        seen.append(req)

    bus.subscribe("bad", FILTER, ReconcileRequest, handle)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.publish("sluice.reconcile.request.gitrepository.ns.x", b"{not json")
        await js.publish(
            "sluice.reconcile.request.gitrepository.ns.y",
            json.dumps(
                {
                    "source": "/x",
                    "type": "io.sluice.reconcile.request.v1",
                    "subject": "s",
                    "data": {"reason": 1},
                }
            ).encode(),
        )
    finally:
        await nc.close()
    records = await dead_letters(nats_url, "bad", 2)
    assert "invalid CloudEvent envelope" in str(records[0]["reason"])
    assert "invalid io.sluice.reconcile.request.v1 payload" in str(records[1]["reason"])
    assert "object" in str(records[1]["reason"])
    # The consumer still works after bad input.
    await bus.publish(request(7))
    await eventually(lambda: len(seen) == 1)


async def test_unexpected_errors_retry_with_backoff_then_dead_letter(nats_url: str) -> None:
    b = await Bus.connect(nats_url, service="flaky")
    attempts: list[int] = []

    async def handle(req: ReconcileRequest, d: Delivery) -> None:
        attempts.append(d.num_delivered)
        raise RuntimeError("boom")

    sub = b.subscribe("flaky", FILTER, ReconcileRequest, handle, max_deliver=3)
    sub.backoff = lambda attempt: 0.05
    try:
        await b.publish(request(1))
        [record] = await dead_letters(nats_url, "flaky", 1)
        assert attempts == [1, 2, 3]
        assert record["reason"] == "RuntimeError: boom"
        assert record["deliveries"] == 3
    finally:
        await b.close(grace=1)


async def test_lease_excludes_other_replicas_and_is_released(bus: Bus, bus2: Bus) -> None:
    async with bus.lease("GitRepository/ns/app"):
        with pytest.raises(LockBusy):
            async with bus2.lease("GitRepository/ns/app"):
                pass
        async with bus2.lease("GitRepository/ns/other"):
            pass
    async with bus2.lease("GitRepository/ns/app"):
        pass


async def test_lease_of_a_dead_holder_expires(nats_url: str) -> None:
    holder = await Bus.connect(nats_url, service="holder", lock_ttl=1.0)
    other = await Bus.connect(nats_url, service="other", lock_ttl=1.0)
    try:
        kv = await holder._locks()
        await kv.create("GitRepository/ns/app", b"crashed-replica")  # taken, never refreshed nor released
        with pytest.raises(LockBusy):
            async with other.lease("GitRepository/ns/app"):
                pass
        await asyncio.sleep(1.3)
        async with other.lease("GitRepository/ns/app"):
            pass
    finally:
        await holder.close(grace=1)
        await other.close(grace=1)


async def test_trace_context_travels_from_publisher_to_handler(nats_url: str) -> None:
    provider = TracerProvider()
    b = await Bus.connect(nats_url, service="traced", tracer=provider.get_tracer("test"))
    seen: list[str] = []

    async def handle(req: ReconcileRequest, d: Delivery) -> None:
        seen.append(d.headers.get(names.HEADER_TRACEPARENT, ""))
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    b.subscribe("traced", FILTER, ReconcileRequest, handle)
    try:
        with provider.get_tracer("test").start_as_current_span("receiver") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            await b.publish(request(1))
        await eventually(lambda: len(seen) == 2)
        assert trace_id in seen[0], "traceparent header carries the trace id"
        assert seen[1] == trace_id, "the handler runs inside the same trace"
    finally:
        await b.close(grace=1)


async def test_consumer_rebinds_after_nats_restart(nats_url: str, nats_server: NatsServer) -> None:
    b = await Bus.connect(nats_url, service="survivor")
    got: list[int] = []

    async def handle(req: ReconcileRequest, _: Delivery) -> None:
        got.append(req.generation or 0)

    b.subscribe("survivor", FILTER, ReconcileRequest, handle)
    try:
        await b.publish(request(1))
        await eventually(lambda: got == [1])
        await eventually(b.ready)
        nats_server.kill()
        await eventually(lambda: not b.ready(), timeout=15)
        nats_server.start()
        await b.publish(request(2), timeout=20)
        await eventually(lambda: got == [1, 2], timeout=30)
        await eventually(b.ready, timeout=15)
    finally:
        await b.close(grace=1)


async def test_stop_hands_in_flight_work_back_to_another_replica(nats_url: str) -> None:
    slow = await Bus.connect(nats_url, service="slow")
    fast = await Bus.connect(nats_url, service="fast")
    started = asyncio.Event()
    done: list[str] = []

    async def stuck(req: ReconcileRequest, _: Delivery) -> None:
        started.set()
        await asyncio.sleep(60)

    async def quick(req: ReconcileRequest, d: Delivery) -> None:
        done.append(f"delivery-{d.num_delivered}")

    slow.subscribe("handoff", FILTER, ReconcileRequest, stuck)
    try:
        await slow.publish(request(1))
        await asyncio.wait_for(started.wait(), 10)
        await slow.close(grace=0.2)  # SIGTERM: the grace runs out, the message is handed back
        handed_back = asyncio.get_running_loop().time()
        fast.subscribe("handoff", FILTER, ReconcileRequest, quick)
        await eventually(lambda: len(done) >= 1, timeout=10)
        waited = asyncio.get_running_loop().time() - handed_back
        await asyncio.sleep(0.3)
        assert len(done) == 1, "exactly one replica finished the handed-back message"
        assert waited < 5, f"handed back at once, not after ack_wait (took {waited:.1f}s)"
    finally:
        await fast.close(grace=1)


async def test_last_returns_the_newest_payload_on_a_subject(bus: Bus) -> None:
    subject = "sluice.reconcile.request.gitrepository.ns.app"
    assert await bus.last(subject, ReconcileRequest) is None
    await bus.publish(request(1))
    await bus.publish(request(2))
    await bus.publish(request(9, name="other"))
    latest = await bus.last(subject, ReconcileRequest)
    assert latest is not None and latest.generation == 2
    entry = await bus.last_entry(subject, ReconcileRequest)
    other = await bus.last_entry("sluice.reconcile.request.gitrepository.ns.other", ReconcileRequest)
    assert entry is not None and other is not None and other.seq > entry.seq


async def test_idle_consumers_stay_bound_through_empty_pulls(bus: Bus) -> None:
    """An empty fetch is not a failure: an idle consumer never re-binds or backs off."""
    got: list[int] = []

    async def handle(req: ReconcileRequest, _: Delivery) -> None:
        got.append(req.generation or 0)

    sub = bus.subscribe("idle", FILTER, ReconcileRequest, handle, fetch_timeout=0.1)
    await eventually(lambda: sub.healthy)
    for _ in range(20):  # twenty empty pulls
        assert sub.healthy
        await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await bus.publish(request(1))
    await eventually(lambda: got == [1])
    assert asyncio.get_running_loop().time() - started < 0.5, "delivered at once, no re-bind backoff"


async def test_the_same_id_in_two_families_is_two_messages(bus: Bus) -> None:
    """Stream-wide de-duplication must not let one family's id swallow another family's message."""
    from libs.common.events import GitCommit

    repo = ObjectRef(
        api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace="ns", name="app"
    )
    same = "GitRepository/ns/app@commit-abc"
    first = await bus.publish(
        GitCommit(repository=repo, branch="main", commit="abc", revision="main@sha1:abc"), msg_id=same
    )
    second = await bus.publish(ReconcileRequest(object=repo, reason="changed"), msg_id=same)
    assert first != second
    info = await bus.js.stream_info(names.STREAM_NAME)
    assert info.state.messages == 2


async def test_an_existing_stream_is_left_as_the_operator_tuned_it(nats_url: str) -> None:
    first = await Bus.connect(nats_url, service="first")
    try:
        info = await first.js.stream_info(names.STREAM_NAME)
        tuned = info.config
        tuned.max_age = 3600.0
        await first.js.update_stream(tuned)
        second = await Bus.connect(nats_url, service="second")
        await second.close()
        info = await first.js.stream_info(names.STREAM_NAME)
        assert info.config.max_age == 3600.0, "connecting did not reset the operator's limit"
    finally:
        await first.close()


async def test_a_stream_without_sluices_subjects_is_an_error_that_says_what_to_do(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().add_stream(name=names.STREAM_NAME, subjects=["other.>"])
    finally:
        await nc.close()
    with pytest.raises(StreamMisconfigured, match=r"add that subject to it \(nats stream edit SLUICE\)"):
        await Bus.connect(nats_url, service="x")
