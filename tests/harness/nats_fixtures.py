"""NATS fixtures: one JetStream nats-server per session, a clean JetStream per test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest

from libs.devservers.nats import NatsServer
from tests.harness.hygiene import register_server

__all__ = ["delete_all_streams", "nats_server", "nats_url"]


async def _delete_all_streams(url: str) -> list[str]:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        jsm = nc.jsm()
        deleted: list[str] = []
        while infos := await jsm.streams_info():
            for info in infos:
                await jsm.delete_stream(info.config.name)
                deleted.append(info.config.name)
        return deleted
    finally:
        await nc.close()


def delete_all_streams(url: str) -> list[str]:
    """Delete every stream (KV buckets and object stores included) on the server at ``url``;
    returns their names. Runs on a private event loop, so it is safe from sync fixtures whatever
    loop the test uses."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_delete_all_streams(url))
    finally:
        loop.close()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A JetStream nats-server for the session. Tests may ``kill()``/``stop()``/``restart()`` it;
    ``nats_url`` brings it back up if a test left it down."""
    server = NatsServer(tmp_path_factory.mktemp("nats") / "store")
    register_server(server)
    with server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> Iterator[str]:
    """The session server's URL, with no JetStream streams before the test and none left after."""
    if not nats_server.running:
        nats_server.start()
    delete_all_streams(nats_server.url)
    yield nats_server.url
    if not nats_server.running:
        nats_server.start()
    delete_all_streams(nats_server.url)
