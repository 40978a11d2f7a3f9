"""The NATS launcher and fixtures against a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from libs.devservers.nats import NatsServer
from libs.devservers.ports import http_status
from tests.harness.hygiene import child_pids

pytestmark = pytest.mark.integration


async def test_server_starts_answers_and_stops_leaving_nothing(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js") as server:
        pid = server.pid
        assert pid in child_pids()
        assert server.url.startswith("nats://127.0.0.1:")
        nc = await nats.connect(server.url)
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        await nc.close()
    assert not server.running
    assert pid not in child_pids()
    assert http_status(f"{server.monitor_url}/healthz") is None


async def test_restart_keeps_stream_messages_and_url(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js") as server:
        url = server.url
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="KEEP", subjects=["keep.>"]))
        for n in range(3):
            await js.publish("keep.it", f"m{n}".encode())
        await nc.close()

        server.restart()
        assert server.url == url

        server.kill()  # a crash, then a start on the same store
        server.start()
        assert server.url == url

        nc = await nats.connect(url)
        js = nc.jetstream()
        info = await js.stream_info("KEEP")
        assert info.state.messages == 3
        sub = await js.pull_subscribe("keep.>", durable="reader", stream="KEEP")
        msgs = await sub.fetch(3, timeout=5)
        assert [m.data for m in msgs] == [b"m0", b"m1", b"m2"]
        await nc.close()


async def test_clients_reconnect_to_a_restarted_server(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js") as server:
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        nc = await nats.connect(server.url, reconnected_cb=on_reconnect, reconnect_time_wait=0.05)
        server.restart()
        await asyncio.wait_for(reconnected.wait(), timeout=10)
        await nc.flush(timeout=5)
        await nc.close()


async def test_nats_url_gives_a_clean_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    assert await js.streams_info() == []
    await js.add_stream(StreamConfig(name="LEFTOVER", subjects=["leftover.>"]))
    kv = await js.create_key_value(bucket="leftover")
    await kv.put("k", b"v")
    await nc.close()


async def test_nats_url_deleted_the_previous_tests_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    assert await nc.jetstream().streams_info() == []
    await nc.close()


def test_nats_url_brings_a_killed_session_server_back(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.kill()
    assert not nats_server.running
    # what the nats_url fixture does for the next test
    nats_server.start()
    assert nats_server.url == url
