"""Running the git CLI without blocking the event loop, with a clean environment and a count of
every command run (so callers and tests can see what a reconcile cost)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from libs.common.runtime.redact import sanitize_message

__all__ = ["Git", "GitError", "GitErrorKind", "GitResult", "classify"]

GitErrorKind = Literal["auth", "host_key", "not_found", "ref_not_found", "timeout", "empty", "other"]

# Hints in git's and ssh's stderr, checked in order; the first match decides the kind.
_HINTS: tuple[tuple[GitErrorKind, tuple[str, ...]], ...] = (
    (
        "host_key",
        (
            "host key verification failed",
            "remote host identification has changed",
            "no ed25519 host key is known",
            "no rsa host key is known",
            "no ecdsa host key is known",
        ),
    ),
    (
        "auth",
        (
            "permission denied",
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "access denied",
            "returned error: 401",
            "returned error: 403",
            "invalid username or password",
        ),
    ),
    (
        "not_found",
        (
            "does not appear to be a git repository",
            "repository not found",
            "not found",
            "could not resolve host",
            "connection refused",
            "no such file or directory",
        ),
    ),
)


def classify(stderr: str) -> GitErrorKind:
    """What kind of failure git's stderr describes."""
    text = stderr.lower()
    for kind, hints in _HINTS:
        if any(hint in text for hint in hints):
            return kind
    return "other"


class GitError(RuntimeError):
    """A git operation failed. The message is sanitized (no credentials, no key material)."""

    def __init__(self, message: str, kind: GitErrorKind = "other") -> None:
        super().__init__(sanitize_message(message))
        self.kind: GitErrorKind = kind


@dataclass(frozen=True)
class GitResult:
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


@dataclass
class Git:
    """A git CLI runner. ``counts`` holds how many times each subcommand ran (``ls-remote``,
    ``fetch``, ``checkout`` …); ``observe(command, outcome)`` is called after every command."""

    binary: str = "git"
    default_timeout: float = 60.0
    observe: Callable[[str, str], None] | None = None
    counts: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment git runs in: no user/system configuration, no prompts, C locale."""
        # The process's own GIT_* and SSH_* (agent socket, askpass) never leak into a fetch.
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_", "SSH_"))}
        env.update(
            {
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "/bin/false",
                "SSH_ASKPASS": "/bin/false",
                "LC_ALL": "C",
                "LANG": "C",
                "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes",
            }
        )
        if extra:
            env.update(extra)
        return env

    async def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        what: str | None = None,
        stdin: bytes | None = None,
    ) -> GitResult:
        """Run ``git <args>``; raise :class:`GitError` (classified, sanitized) when it fails or
        outlives ``timeout``. ``what`` describes the operation in error messages."""
        command = _subcommand(args)
        self.counts[command] += 1
        limit = self.default_timeout if timeout is None else timeout
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            cwd=cwd,
            env=self.base_env(env),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(limit):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            await _kill(proc)
            self._observe(command, "timeout")
            raise GitError(f"{what or 'git ' + command} timed out after {limit:g}s", "timeout") from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
        stderr = err.decode("utf-8", errors="replace").strip()
        if proc.returncode != 0:
            self._observe(command, "error")
            detail = _last_lines(stderr) or f"exit status {proc.returncode}"
            raise GitError(f"{what or 'git ' + command}: {detail}", classify(stderr))
        self._observe(command, "ok")
        return GitResult(out, stderr)

    def _observe(self, command: str, outcome: str) -> None:
        if self.observe is not None:
            with contextlib.suppress(Exception):
                self.observe(command, outcome)


def _subcommand(args: Sequence[str]) -> str:
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-c", "-C", "--git-dir", "--work-tree"):
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return "git"


def _last_lines(stderr: str, count: int = 4) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # Progress noise and hints add nothing to a status message.
    lines = [line for line in lines if not line.lower().startswith(("hint:", "warning: redirecting"))]
    return "; ".join(lines[-count:])


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        await proc.wait()
