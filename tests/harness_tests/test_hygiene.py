"""The leak checker's detection functions, called directly on deliberate leaks."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.devservers.nats import NatsServer
from tests.harness.hygiene import (
    child_pids,
    describe_task,
    find_leaked_children,
    owned_pids,
    pending_tasks,
)

pytestmark = pytest.mark.integration


def _wait_for_state(pid: int, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] == state:
            return
        assert time.monotonic() < deadline, f"pid {pid} never reached state {state}"
        time.sleep(0.005)


def test_a_leaked_subprocess_is_found_named_and_killed() -> None:
    baseline = child_pids()
    proc = subprocess.Popen(["sleep", "30"])
    leaked = find_leaked_children(baseline, exclude=owned_pids(), grace=0.05)
    assert [(p.pid, p.cmdline) for p in leaked] == [(proc.pid, "sleep 30")], (baseline, owned_pids())
    assert proc.wait(timeout=5) == -9  # it was SIGKILLed


def test_a_child_that_exits_within_the_grace_period_is_no_leak() -> None:
    baseline = child_pids()
    proc = subprocess.Popen(["sleep", "0.05"])
    assert find_leaked_children(baseline, exclude=owned_pids(), grace=5) == []
    assert proc.wait(timeout=5) == 0


def test_excluded_and_baseline_children_are_not_leaks() -> None:
    session = owned_pids()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert find_leaked_children(session, exclude={proc.pid}, grace=0) == []
        assert find_leaked_children(session | {proc.pid}, grace=0) == []
        leaked = find_leaked_children(session, grace=0, kill=False)
        assert [p.pid for p in leaked] == [proc.pid]
        assert proc.poll() is None  # kill=False left it alone
    finally:
        proc.kill()
        proc.wait()


def test_zombies_are_not_running_children() -> None:
    proc = subprocess.Popen(["true"])
    _wait_for_state(proc.pid, "Z")
    assert proc.pid not in child_pids()
    assert proc.wait() == 0


def test_a_restarted_session_server_stays_owned(nats_server: NatsServer) -> None:
    first = nats_server.pid
    assert first in owned_pids()
    nats_server.restart()
    assert nats_server.pid != first
    assert nats_server.pid in owned_pids()
    assert find_leaked_children(set(), exclude=owned_pids(), grace=0, kill=False) == []


async def test_a_leaked_task_is_found_and_named() -> None:
    loop = asyncio.get_running_loop()
    baseline = set(asyncio.all_tasks(loop))

    async def linger() -> None:
        await asyncio.sleep(100)

    task = asyncio.create_task(linger(), name="lingerer")
    await asyncio.sleep(0)
    leaked = pending_tasks(loop, baseline)
    assert leaked == [task]  # the running test task itself is not counted
    description = describe_task(task)
    assert description.startswith("lingerer: test_a_leaked_task_is_found_and_named.<locals>.linger at ")
    assert "test_hygiene.py:" in description
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pending_tasks(loop, baseline) == []


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    # deliberately not registered: a wider-scoped fixture's Server is registered automatically
    with NatsServer(tmp_path_factory.mktemp("module-nats")) as server:
        yield server


def test_a_wider_fixtures_server_restarted_by_a_test_is_no_leak(module_nats: NatsServer) -> None:
    module_nats.restart()
    assert module_nats.pid in owned_pids()
