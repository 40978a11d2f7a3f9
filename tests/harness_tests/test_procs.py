"""The shared launcher plumbing: failures name the server and show its output; stop always reaps."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from libs.devservers.nats import NatsServer
from libs.devservers.ports import free_port, stable_port, wait_for_tcp
from libs.devservers.procs import ServerStartError, launch
from libs.devservers.registry import DockerRegistry
from libs.devservers.sshd import GitSshServer
from tests.harness.hygiene import child_pids

pytestmark = pytest.mark.integration


def test_a_server_that_exits_early_reports_its_output(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError) as error:
        launch(
            "broken",
            ["sh", "-c", "echo 'config: no such option' >&2; exit 3"],
            log_path=tmp_path / "broken.log",
            ready=lambda process: False,
        )
    message = str(error.value)
    assert "broken: exited with status 3 before it was ready" in message
    assert "config: no such option" in message


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    before = child_pids()
    started = time.monotonic()
    with pytest.raises(ServerStartError) as error:
        launch(
            "mute",
            ["sh", "-c", "echo listening, honest; exec sleep 30"],
            log_path=tmp_path / "mute.log",
            ready=lambda process: False,
            timeout=0.3,
        )
    assert time.monotonic() - started < 5
    assert "mute: not ready within 0.3s" in str(error.value)
    assert "listening, honest" in error.value.output_tail
    assert child_pids() <= before


def test_stop_falls_back_to_sigkill(tmp_path: Path) -> None:
    process = launch(
        "stubborn",
        ["sh", "-c", "trap '' TERM; echo ignoring TERM; exec sleep 30"],
        log_path=tmp_path / "s.log",
        ready=lambda process: "ignoring TERM" in process.output_tail(),
    )
    started = time.monotonic()
    assert process.stop(timeout=0.2) == -9
    assert time.monotonic() - started < 5
    assert process.pid is None and not process.is_running()


@pytest.mark.parametrize("server", ["registry", "sshd"])
def test_a_taken_port_is_recognised_as_worth_a_retry(server: str, tmp_path: Path) -> None:
    """launch_on_free_port retries on another port exactly when the real server says its port was
    taken; check each server's own wording is recognised (with a fixed port there is no retry)."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        launcher = (
            DockerRegistry(tmp_path / "reg", port=taken)
            if server == "registry"
            else GitSshServer(tmp_path / "sshd", port=taken)
        )
        with pytest.raises(ServerStartError) as error:
            launcher.start()
        assert error.value.address_in_use, error.value.output_tail
        assert not launcher.running


def test_nats_comes_back_on_a_new_port_when_its_old_one_was_taken(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js") as server:
        old_port = server.port
        server.stop()
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", old_port))
            squatter.listen()
            server.start()
            assert server.port != old_port
            assert server.url == f"nats://127.0.0.1:{server.port}"


def test_wait_for_tcp(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        wait_for_tcp("127.0.0.1", listener.getsockname()[1], timeout=2)
    with pytest.raises(TimeoutError):
        wait_for_tcp("127.0.0.1", free_port(), timeout=0.1)


def test_stable_ports_are_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {stable_port() for _ in range(5)}
    assert all(port < low for port in ports)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports.pop()))  # free indeed
