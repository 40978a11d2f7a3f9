"""Start, wait for and stop the server processes that the devservers modules launch.

Every launcher goes through :func:`launch` (or :func:`launch_on_free_port`): the process writes its
stdout and stderr to a log file (a pipe nobody reads would eventually block the server), the launch
waits with a deadline until a readiness check passes, and a failure raises :class:`ServerStartError`
carrying the tail of that log. :class:`Server` gives each launcher the context-manager protocol and
``start``/``stop``/``kill``.
"""

from __future__ import annotations

import abc
import atexit
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from libs.devservers.ports import free_port

__all__ = [
    "ManagedProcess",
    "Server",
    "ServerStartError",
    "launch",
    "launch_on_free_port",
]

_TAIL_BYTES = 16384
_POLL_INTERVAL = 0.01

# Every process started here and not yet stopped; terminated at interpreter exit as a safety net
# (also when the Server object that started it was dropped without stop()).
_live: set[ManagedProcess] = set()


class ServerStartError(RuntimeError):
    """A server did not come up; the message ends with the tail of its output."""

    def __init__(self, name: str, reason: str, output_tail: str) -> None:
        self.name = name
        self.reason = reason
        self.output_tail = output_tail
        super().__init__(f"{name}: {reason}\n--- last output of {name} ---\n{output_tail}")

    @property
    def address_in_use(self) -> bool:
        """True when the server failed because its port was taken meanwhile (worth a retry)."""
        return "address already in use" in self.output_tail.lower()


class ManagedProcess:
    """One child process whose stdout and stderr go to ``log_path`` (appended, so restarts keep history)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self) -> None:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                )
            except OSError as exc:
                raise ServerStartError(self.name, f"cannot execute {self.argv[0]}: {exc}", "") from exc
        _live.add(self)

    @property
    def pid(self) -> int | None:
        """The pid while the process has not been reaped, else ``None``."""
        if self._popen is None or self._popen.returncode is not None:
            return None
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def output_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines this process wrote (only this run's output, not earlier runs')."""
        try:
            with self.log_path.open("rb") as log:
                end = log.seek(0, os.SEEK_END)
                start = max(self._log_start, end - _TAIL_BYTES)
                log.seek(start)
                data = log.read()
        except FileNotFoundError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll ``ready`` until it returns True; raise :class:`ServerStartError` if the process exits
        or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.returncode
            if code is not None:
                raise ServerStartError(
                    self.name, f"exited with status {code} before it was {what}", self.output_tail()
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(self.name, f"not {what} within {timeout:.1f}s", self.output_tail())
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaps. Returns the exit status."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            try:
                popen.send_signal(signal.SIGTERM)
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        _live.discard(self)
        return popen.returncode

    def kill(self) -> int | None:
        """SIGKILL (a crash, as far as the server can tell) and reap. Returns the exit status."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        _live.discard(self)
        return popen.returncode


def launch(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    ready: Callable[[ManagedProcess], bool],
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` and wait until ``ready(process)``; on failure the process is killed and reaped and
    :class:`ServerStartError` (with the output tail) is raised."""
    process = ManagedProcess(name, argv, log_path=log_path, env=env, cwd=cwd)
    process.start()
    try:
        process.wait_until(lambda: ready(process), timeout)
    except BaseException:
        process.kill()
        raise
    return process


def launch_on_free_port(
    name: str,
    prepare: Callable[[int], Sequence[str]],
    *,
    ready: Callable[[ManagedProcess, int], bool],
    log_path: Path,
    timeout: float = 10.0,
    attempts: int = 5,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
) -> tuple[ManagedProcess, int]:
    """Launch a server that must be told its port up front.

    ``prepare(port)`` writes whatever configuration names the port and returns the argv;
    ``ready(process, port)`` is the readiness check. Unless a fixed ``port`` is given, a port is
    picked with :func:`free_port`; in the rare case another process takes it before the server binds
    it, a new port is picked (up to ``attempts``).
    """
    last_error: ServerStartError | None = None
    for _ in range(1 if port is not None else attempts):
        chosen = port if port is not None else free_port()
        argv = prepare(chosen)
        try:
            process = launch(
                name,
                argv,
                log_path=log_path,
                ready=functools.partial(_ready_on_port, ready, port=chosen),
                timeout=timeout,
                env=env,
                cwd=cwd,
            )
        except ServerStartError as exc:
            if not exc.address_in_use:
                raise
            last_error = exc
            continue
        return process, chosen
    assert last_error is not None
    raise last_error


def _ready_on_port(
    ready: Callable[[ManagedProcess, int], bool], process: ManagedProcess, *, port: int
) -> bool:
    return ready(process, port)


class Server(abc.ABC):
    """A server process with ``start()``/``stop()``/``kill()`` that is also a (sync) context manager."""

    def __init__(self) -> None:
        self._process: ManagedProcess | None = None

    @abc.abstractmethod
    def _launch(self) -> ManagedProcess:
        """Prepare configuration, start the process and wait until it answers."""

    def start(self) -> Self:
        if self.running:
            raise RuntimeError(f"{type(self).__name__} is already running (pid {self.pid})")
        self._process = self._launch()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate gracefully (SIGTERM, then SIGKILL after ``timeout``) and reap. Idempotent."""
        if self._process is not None:
            self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL and reap, as a crash would."""
        if self._process is not None:
            self._process.kill()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def output_tail(self, lines: int = 40) -> str:
        """The last lines the current (or last) process wrote."""
        return "" if self._process is None else self._process.output_tail(lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _terminate_leftovers() -> None:
    for process in list(_live):
        process.stop(timeout=2.0)
