"""Test hygiene, enforced for every test: no child process and no asyncio task may outlive the test.

The detection functions (:func:`find_leaked_children`, :func:`pending_tasks`) are plain functions so
the harness's own tests can call them on a deliberate leak; the autouse fixture :func:`_hygiene`
applies them around every test and fails the test (in its teardown) naming what leaked.

Processes owned by session-, package-, module- or class-scoped fixtures are not leaks: a
``pytest_fixture_setup`` wrapper records the children each such fixture starts. A server such a
fixture yields may be restarted by a test (a new pid): a :class:`libs.devservers.procs.Server` the
fixture yields (or holds in an attribute of what it yields) is registered automatically; anything
else with a ``.pid`` can be registered with :func:`register_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import warnings
from collections.abc import Collection, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from libs.devservers.procs import Server

__all__ = [
    "LeakedProcess",
    "child_pids",
    "describe_task",
    "find_leaked_children",
    "owned_pids",
    "pending_tasks",
    "register_server",
    "settle_tasks",
]

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__)
PROCESS_GRACE = 1.0
TASK_GRACE = 0.1
TASK_CANCEL_GRACE = 1.0


class _HasPid(Protocol):
    @property
    def pid(self) -> int | None: ...


# pids started by wider-than-function fixtures, and servers whose current pid is never a leak
_fixture_pids: set[int] = set()
_servers: list[_HasPid] = []


def register_server(server: _HasPid) -> None:
    """Never count ``server``'s current process as a leak (for session servers a test may restart)."""
    _servers.append(server)


def owned_pids() -> set[int]:
    """Children that belong to fixtures wider than a test, not to the test that is running."""
    return _fixture_pids | {pid for server in _servers if (pid := server.pid) is not None}


def _state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name is in parentheses and may itself contain spaces or parentheses
    return stat[stat.rindex(")") + 2]


def _alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in {"Z", "X"}


def child_pids(pid: int | None = None) -> set[int]:
    """Children of ``pid`` (this process by default) still running: zombies, which have exited and
    only wait to be reaped by whoever owns them, are not counted."""
    pid = os.getpid() if pid is None else pid
    children: set[int] = set()
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir():
        try:
            children.update(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:
            continue  # the thread ended while we looked
    return {child for child in children if _alive(child)}


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or "?"


@dataclass(frozen=True)
class LeakedProcess:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.cmdline}"


def find_leaked_children(
    baseline: Collection[int],
    *,
    exclude: Collection[int] = (),
    grace: float = PROCESS_GRACE,
    kill: bool = True,
) -> list[LeakedProcess]:
    """Children running now that were not in ``baseline`` nor in ``exclude``, after giving them
    ``grace`` seconds to exit. With ``kill`` the leftovers are SIGKILLed (their owner, if any, reaps
    them). Returns the leftovers with the command lines they had."""
    suspects = child_pids() - set(baseline) - set(exclude)
    if not suspects:
        return []
    cmdlines = {pid: _cmdline(pid) for pid in suspects}
    deadline = time.monotonic() + grace
    while True:
        suspects = {pid for pid in suspects if _alive(pid)}
        if not suspects or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    leaked = [LeakedProcess(pid, cmdlines[pid]) for pid in sorted(suspects)]
    if kill:
        for process in leaked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    return leaked


def pending_tasks(
    loop: asyncio.AbstractEventLoop, baseline: Collection[asyncio.Task[Any]] = ()
) -> list[asyncio.Task[Any]]:
    """Tasks of ``loop`` that have not finished, other than those in ``baseline`` and the current one."""
    current = asyncio.current_task(loop) if loop.is_running() else None
    return [task for task in asyncio.all_tasks(loop) if task not in baseline and task is not current]


def describe_task(task: asyncio.Task[Any]) -> str:
    """``name: coroutine qualname at file:line`` — where the task's own coroutine is suspended, plus
    the innermost frame outside asyncio it is waiting in, when that is elsewhere."""
    coro: Any = task.get_coro()
    text = f"{task.get_name()}: {getattr(coro, '__qualname__', repr(coro))}"
    locations: list[str] = []
    awaited: Any = coro
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None and (not locations or not frame.f_code.co_filename.startswith(_ASYNCIO_DIR)):
            locations.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if locations:
        text += f" at {locations[0]}"
    if len(locations) > 1 and locations[-1] != locations[0]:
        text += f", waiting in {locations[-1]}"
    return text


def settle_tasks(
    loop: asyncio.AbstractEventLoop, tasks: Iterable[asyncio.Task[Any]], timeout: float = TASK_CANCEL_GRACE
) -> None:
    """Cancel ``tasks`` and let ``loop`` run until they finish (or ``timeout``), so a leak reported
    by one test does not spill over into the next or into 'Task was destroyed' warnings."""
    tasks = [task for task in tasks if not task.done()]
    if not tasks or loop.is_closed() or loop.is_running():
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))


def _let_finish(loop: asyncio.AbstractEventLoop, tasks: list[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Give tasks that are on their way out (woken, or already asked to cancel) a moment to finish;
    return those still pending."""
    if tasks and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(asyncio.wait(tasks, timeout=TASK_GRACE))
        cancelling = [task for task in tasks if not task.done() and task.cancelling()]
        if cancelling:
            loop.run_until_complete(asyncio.wait(cancelling, timeout=TASK_CANCEL_GRACE))
    return [task for task in tasks if not task.done()]


def _loop_fixture_name(item: pytest.Item) -> str | None:
    """The pytest-asyncio fixture that provides the loop this test runs on, if it runs on one.

    pytest-asyncio (0.25) appends it to the item's fixture names before fixtures are set up:
    ``event_loop`` for the default function scope, ``_session_event_loop`` or ``<nodeid>::<event_loop>``
    for wider loop scopes.
    """
    names: list[str] = list(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("asyncio") is None and "event_loop" not in names:
        return None
    for name in reversed(names):
        if name in {"event_loop", "_session_event_loop"} or name.endswith("::<event_loop>"):
            return name
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, None]:
    """Remember the processes that wider-scoped fixtures start: they are not a test's leak."""
    if fixturedef.scope == "function":
        yield
        return
    before = child_pids()
    outcome = yield
    _fixture_pids.update(child_pids() - before)
    if outcome.excinfo is None:
        value = outcome.get_result()
        for candidate in (value, *getattr(value, "__dict__", {}).values()):
            if isinstance(candidate, Server) and candidate not in _servers:
                register_server(candidate)


@pytest.fixture(autouse=True)
def _hygiene(request: pytest.FixtureRequest) -> Generator[None, None, None]:
    loop: asyncio.AbstractEventLoop | None = None
    task_baseline: set[asyncio.Task[Any]] = set()
    loop_fixture = _loop_fixture_name(request.node)
    if loop_fixture is not None:
        # Requesting the loop here sets it up before any other function fixture, so it is torn down
        # after this fixture's check (and after every async fixture's own teardown).
        loop = request.getfixturevalue(loop_fixture)
        task_baseline = set(asyncio.all_tasks(loop))
    process_baseline = child_pids()

    yield

    problems: list[str] = []
    if loop is not None and not loop.is_closed():
        leaked_tasks = _let_finish(loop, pending_tasks(loop, task_baseline))
        if leaked_tasks:
            problems.append(
                "asyncio tasks still pending after the test:\n"
                + "\n".join(f"  {describe_task(task)}" for task in leaked_tasks)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                settle_tasks(loop, leaked_tasks)
    _fixture_pids.difference_update([pid for pid in _fixture_pids if not _alive(pid)])  # pids get reused
    leaked_processes = find_leaked_children(process_baseline, exclude=owned_pids())
    if leaked_processes:
        problems.append(
            "child processes still running after the test (killed now):\n"
            + "\n".join(f"  {process}" for process in leaked_processes)
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
