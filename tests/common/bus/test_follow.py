"""Bus.follow: an ephemeral ordered consumer yielding payloads in stream order — only new ones by
default, everything with deliver_new_only=False, from a point in time with `since`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.common.bus import Bus
from libs.common.events import EventRecord, ObjectRef

pytestmark = pytest.mark.integration

SUBJECT = "sluice.event.>"


def record(name: str, message: str) -> EventRecord:
    ref = ObjectRef(
        api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace="ns", name=name
    )
    return EventRecord(
        involved_object=ref,
        severity="info",
        timestamp=datetime.now(UTC),
        message=message,
        reason="NewArtifact",
        reporting_controller="source-controller",
    )


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_url, service="test-follow")
    yield b
    await b.close(grace=1)


async def take(
    bus: Bus, count: int, *, deliver_new_only: bool = True, since: datetime | None = None
) -> list[tuple[EventRecord, datetime]]:
    out: list[tuple[EventRecord, datetime]] = []
    async with (
        asyncio.timeout(10),
        contextlib.aclosing(
            bus.follow(SUBJECT, EventRecord, deliver_new_only=deliver_new_only, since=since)
        ) as stream,
    ):
        async for item in stream:
            out.append(item)
            if len(out) == count:
                break
    return out


async def test_follow_yields_only_new_events_in_order(bus: Bus) -> None:
    await bus.publish(record("old", "before"))
    received: list[str] = []
    started = asyncio.Event()

    async def reader() -> None:
        stream = bus.follow(SUBJECT, EventRecord)
        started.set()
        async with asyncio.timeout(10):
            async for payload, when in stream:
                assert when.tzinfo is not None
                received.append(f"{payload.involved_object.name}:{payload.message}")
                if len(received) == 2:
                    break
        await stream.aclose()

    task = asyncio.create_task(reader())
    await started.wait()
    # The consumer is created on the first iteration; publish until the reader sees the first one.
    async with asyncio.timeout(10):
        while not received:
            await bus.publish(record("app", "first"), msg_id="first")
            await asyncio.sleep(0.1)
    await bus.publish(record("app", "second"))
    await task
    assert received == ["app:first", "app:second"]


async def test_follow_replays_everything_or_since(bus: Bus) -> None:
    await bus.publish(record("a", "one"))
    await bus.publish(record("b", "two"))
    everything = await take(bus, 2, deliver_new_only=False)
    assert [p.message for p, _ in everything] == ["one", "two"]
    recent = await take(bus, 1, since=datetime.now(UTC) - timedelta(minutes=5))
    assert recent[0][0].message == "one"
