"""The bus authenticates as a NATS user, as each service does against deploy/k8s's NATS."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.bus import Bus
from libs.devservers.ports import free_port, wait_for_tcp


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[str]:
    """A JetStream nats-server that only lets user `source` with password `pw-123` in."""
    port = free_port()
    server = subprocess.Popen(
        [
            "nats-server",
            "-js",
            "-sd",
            str(tmp_path),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--user",
            "source",
            "--pass",
            "pw-123",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_tcp("127.0.0.1", port, timeout=10)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_connects_with_user_and_password(secured_nats: str) -> None:
    bus = await Bus.connect(secured_nats, service="source", user="source", password="pw-123")
    try:
        assert bus.connected
        info = await bus.js.stream_info(bus.stream)
        assert info.config.name == bus.stream
    finally:
        await bus.close()


async def test_a_wrong_password_fails_without_showing_it(secured_nats: str) -> None:
    with pytest.raises(ConnectionError) as caught:
        await Bus.connect(
            secured_nats, service="source", user="source", password="not-the-pw", connect_timeout=1.0
        )
    assert "not-the-pw" not in str(caught.value)
    assert "cannot reach NATS at nats://127.0.0.1" in str(caught.value)
    assert "authorization violation" in str(caught.value).lower()
