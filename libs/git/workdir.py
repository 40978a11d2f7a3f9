"""Commit and push: check a reference out of the shared mirror into a throw-away work tree, let the
caller edit files, commit with a given author (optionally signed), push with the remote's
credentials — and when the push is rejected because someone else pushed first, fetch the new head
and do it all again on top of it, at once (bounded attempts), so no update waits for an interval.

The work tree borrows the mirror's objects (``objects/info/alternates``), so checking out costs no
copy; the mirror lock is held only while fetching, so automations of one repository run side by
side and their push races are real and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

from libs.git.cli import Git, GitError
from libs.git.mirror import MirrorCache, RemoteRefs
from libs.git.refs import GitRef, Resolved

__all__ = [
    "Author",
    "Outcome",
    "PushRejected",
    "PushTarget",
    "SigningKey",
    "is_push_race",
    "push_option_args",
    "update_and_push",
]

T = TypeVar("T")

_RACE_MARKERS = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "stale info",
    "cannot lock ref",
    "failed to update ref",
    "incorrect old value",
)


class PushRejected(GitError):
    """Every attempt lost the race against other pushes."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class SigningKey:
    """A key commits are signed with: ``openpgp`` (ASCII-armoured secret key) or ``ssh`` (private key)."""

    format: Literal["openpgp", "ssh"]
    key: str
    passphrase: str | None = None

    def __repr__(self) -> str:  # never show the key
        return f"SigningKey(format={self.format!r})"


@dataclass(frozen=True)
class PushTarget:
    """Where the commit goes: ``branch`` (force-pushed when ``force``), plus an optional extra
    ``refspec`` (e.g. ``refs/heads/main:refs/for/main``) and git push ``options``."""

    branch: str
    force: bool = False
    refspec: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a run did. ``commit`` is the pushed commit (None: nothing to commit or push)."""

    base: Resolved
    changes: T | None
    commit: str | None = None
    message: str | None = None
    attempts: int = 1


def is_push_race(exc: GitError) -> bool:
    """Whether a failed push lost a race (the remote branch moved) rather than failed for good."""
    text = str(exc).lower()
    return any(marker in text for marker in _RACE_MARKERS)


def push_option_args(options: Mapping[str, str]) -> list[str]:
    """``-o key=value`` (``-o key`` for an empty value) in key order."""
    args: list[str] = []
    for key in sorted(options):
        value = options[key]
        args += ["-o", f"{key}={value}" if value else key]
    return args


def _prepare_tree(tree: Path, mirror: Path) -> None:
    objects = (mirror / "objects").resolve()
    info = tree / ".git" / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{objects}\n")
    shallow = mirror / "shallow"
    if shallow.exists():
        shutil.copyfile(shallow, tree / ".git" / "shallow")


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content if content.endswith("\n") else content + "\n")


@contextlib.asynccontextmanager
async def _temp_dir(prefix: str) -> AsyncIterator[Path]:
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


@dataclass
class _Signer:
    """git configuration (``-c`` pairs) and environment that make ``git commit -S`` sign."""

    config: list[str]
    env: dict[str, str]


async def _signer(key: SigningKey, home: Path, timeout: float) -> _Signer:
    if key.format == "ssh":
        path = home / "signing_key"
        await asyncio.to_thread(_write_private, path, key.key)
        program = "ssh-keygen"
        env: dict[str, str] = {}
        if key.passphrase:
            # ssh-keygen reads a key passphrase through SSH_ASKPASS when forced to.
            await asyncio.to_thread(_write_private, home / "passphrase", key.passphrase)
            askpass = home / "askpass.sh"
            await asyncio.to_thread(_write_script, askpass, f"#!/bin/sh\ncat '{home / 'passphrase'}'\n")
            env = {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": "sluice:0"}
        return _Signer(
            ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.program={program}", "-c", f"user.signingkey={path}"],
            env,
        )
    gnupg = home / "gnupg"
    await asyncio.to_thread(gnupg.mkdir, 0o700)
    env = {"GNUPGHOME": str(gnupg)}
    await _gpg(["--batch", "--import"], env, key.key.encode(), timeout, key.passphrase, home)
    fingerprint = ""
    listing = await _gpg(["--batch", "--with-colons", "--list-secret-keys"], env, None, timeout, None, home)
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            fingerprint = line.split(":")[9]
            break
    if not fingerprint:
        raise GitError("the signing key Secret holds no OpenPGP secret key")
    wrapper = home / "gpg.sh"
    passphrase_args = ""
    if key.passphrase:
        await asyncio.to_thread(_write_private, home / "passphrase", key.passphrase)
        passphrase_args = f"--pinentry-mode loopback --passphrase-file '{home / 'passphrase'}' "
    await asyncio.to_thread(
        _write_script, wrapper, f'#!/bin/sh\nexec gpg --batch --no-tty {passphrase_args}"$@"\n'
    )
    return _Signer(
        ["-c", "gpg.format=openpgp", "-c", f"gpg.program={wrapper}", "-c", f"user.signingkey={fingerprint}"],
        env,
    )


def _write_script(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


async def _gpg(
    args: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float,
    passphrase: str | None,
    home: Path,
) -> str:
    extra: list[str] = []
    if passphrase:
        await asyncio.to_thread(_write_private, home / "passphrase", passphrase)
        extra = ["--pinentry-mode", "loopback", "--passphrase-file", str(home / "passphrase")]
    proc = await asyncio.create_subprocess_exec(
        "gpg",
        *extra,
        *args,
        env={**Git.base_env(), **env},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError("importing the signing key timed out", "timeout") from None
    if proc.returncode != 0:
        raise GitError("the signing key could not be imported (is it an OpenPGP secret key?)")
    return out.decode("utf-8", errors="replace")


async def _stop_gpg_agent(home: Path) -> None:
    gnupg = home / "gnupg"
    if not gnupg.exists():
        return
    with contextlib.suppress(Exception):
        proc = await asyncio.create_subprocess_exec(
            "gpgconf",
            "--kill",
            "gpg-agent",
            env={**Git.base_env(), "GNUPGHOME": str(gnupg)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            await proc.wait()


async def _fetch_state(
    cache: MirrorCache,
    url: str,
    env: Mapping[str, str],
    checkout: GitRef,
    push: PushTarget,
    timeout: float,
) -> tuple[Path, Resolved, str | None]:
    """Resolve the checkout ref (and the push branch's head), bring both commits into the mirror."""
    push_ref = f"refs/heads/{push.branch}"
    async with cache.locked(url) as mirror:
        patterns = [*checkout.ls_remote_patterns(), push_ref]
        remote: RemoteRefs = await cache.ls_remote(url, patterns, env=env, timeout=timeout)
        resolved = checkout.pinned() if checkout.mode == "commit" else checkout.resolve(remote)
        push_head = remote.get(push_ref)
        wanted: list[str] = []
        if not await cache.has_commit(mirror, resolved.commit):
            wanted.append(
                f"+{resolved.remote_ref}:{resolved.remote_ref}"
                if resolved.remote_ref and checkout.mode != "commit"
                else resolved.commit
            )
        if push_head and push_head != resolved.commit and not await cache.has_commit(mirror, push_head):
            wanted.append(f"+{push_ref}:{push_ref}")
        if wanted:
            await cache.fetch(mirror, url, wanted, env=env, timeout=timeout)
        elif checkout.mode == "commit":
            # Cached objects may come from another user's fetch: prove access first.
            await cache.check_access(url, env=env, timeout=timeout)
    return mirror, resolved, push_head


async def update_and_push(
    cache: MirrorCache,
    url: str,
    env: Mapping[str, str],
    *,
    checkout: GitRef,
    push: PushTarget,
    author: Author,
    edit: Callable[[Path], Awaitable[T]],
    message: Callable[[T], str],
    timeout: float = 60.0,
    attempts: int = 5,
    signing: SigningKey | None = None,
    before_push: Callable[[], Awaitable[None]] | None = None,
) -> Outcome[T]:
    """Check out ``checkout`` from ``url``, run ``edit(tree)`` (which returns what it changed; a
    falsy result means nothing), commit with ``message(changes)`` and push to ``push``.

    A push rejected because the branch moved is retried at once on the new head — the edit is
    applied again there — up to ``attempts`` times; then :class:`PushRejected`. Nothing is
    committed when the edit leaves the tree as it was (or, for a force-pushed branch, when the
    branch already holds exactly that tree). ``before_push`` runs just before each push (tests).
    """
    git = cache.git
    identity = {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": author.name,
        "GIT_COMMITTER_EMAIL": author.email,
    }
    last_error: GitError | None = None
    async with _temp_dir("sluice-sign-") as home:
        signer = await _signer(signing, home, timeout) if signing is not None else None
        try:
            for attempt in range(1, max(1, attempts) + 1):
                mirror, resolved, push_head = await _fetch_state(cache, url, env, checkout, push, timeout)
                async with _temp_dir("sluice-work-") as tree:
                    await git.run(["init", "--quiet", str(tree)], what="creating a work tree")
                    await asyncio.to_thread(_prepare_tree, tree, mirror)
                    await git.run(
                        ["-C", str(tree), "checkout", "--quiet", "-B", push.branch, resolved.commit],
                        timeout=timeout,
                        what=f"checking out {resolved.revision}",
                    )
                    changes = await edit(tree)
                    if not changes:
                        return Outcome(resolved, changes, attempts=attempt)
                    await git.run(["-C", str(tree), "add", "--all"], timeout=timeout, what="staging changes")
                    status = await git.run(
                        ["-C", str(tree), "status", "--porcelain"], timeout=timeout, what="reading changes"
                    )
                    if not status.text.strip():
                        return Outcome(resolved, changes, attempts=attempt)
                    if push.force and push_head and push_head != resolved.commit:
                        new_tree = (
                            await git.run(["-C", str(tree), "write-tree"], what="writing the tree")
                        ).text
                        old_tree = (
                            await git.run(
                                ["-C", str(tree), "rev-parse", f"{push_head}^{{tree}}"],
                                what="reading the push branch",
                            )
                        ).text
                        if new_tree.strip() == old_tree.strip():
                            return Outcome(resolved, changes, attempts=attempt)
                    text = message(changes)
                    sign_config = signer.config if signer is not None else []
                    sign_env = signer.env if signer is not None else {}
                    await git.run(
                        [
                            "-C",
                            str(tree),
                            "-c",
                            f"user.name={author.name}",
                            "-c",
                            f"user.email={author.email}",
                            *sign_config,
                            "commit",
                            "--quiet",
                            "--no-verify",
                            "--cleanup=verbatim",
                            "--allow-empty-message",
                            *(["-S"] if signer is not None else []),
                            "-F",
                            "-",
                        ],
                        env={**identity, **sign_env},
                        timeout=timeout,
                        stdin=text.encode("utf-8"),
                        what="committing" + (" (signing)" if signer is not None else ""),
                    )
                    commit = (
                        await git.run(["-C", str(tree), "rev-parse", "HEAD"], what="reading the commit")
                    ).text.strip()
                    if before_push is not None:
                        await before_push()
                    spec = f"{'+' if push.force else ''}refs/heads/{push.branch}:refs/heads/{push.branch}"
                    specs = [spec] + ([push.refspec] if push.refspec else [])
                    try:
                        await git.run(
                            [
                                "-C",
                                str(tree),
                                "push",
                                "--quiet",
                                *push_option_args(push.options),
                                "--",
                                url,
                                *specs,
                            ],
                            env=env,
                            timeout=timeout,
                            what=f"failed to push to branch '{push.branch}'",
                        )
                    except GitError as exc:
                        if not is_push_race(exc):
                            raise
                        last_error = exc
                        continue
                    return Outcome(resolved, changes, commit, text, attempt)
        finally:
            await _stop_gpg_agent(home)
    raise PushRejected(
        f"push to branch '{push.branch}' rejected {attempts} times (the branch kept moving): {last_error}"
    )
