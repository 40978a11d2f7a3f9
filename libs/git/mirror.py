"""A cache of bare mirrors, one per remote URL, shared by every object that fetches that URL.

A changed revision costs a fetch of the delta into the mirror, never a fresh clone; an unchanged
one costs a single ``ls-remote`` (the caller compares it with what it stored). Fetches are
shallow (depth 1, like Flux). Operations on one URL are serialized by an asyncio lock; the tree of
a commit is exported with ``git checkout`` into a directory of the caller's, using a private index
file, so exports never disturb each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from libs.common.runtime.redact import redact_url
from libs.git.cli import Git, GitError

__all__ = ["MirrorCache", "RemoteRefs", "Submodule", "resolve_submodule_url"]


@dataclass(frozen=True)
class Submodule:
    """A submodule of a commit: where it goes, where it comes from, which commit it pins."""

    path: str
    url: str
    commit: str


def resolve_submodule_url(parent: str, url: str) -> str:
    """A ``.gitmodules`` URL as git resolves it: ``./`` and ``../`` are relative to the parent's URL."""
    if not url.startswith(("./", "../")):
        return url
    parts = urlsplit(parent)
    base = parts.path.rstrip("/")
    for segment in url.split("/"):
        if segment == "..":
            base = posixpath.dirname(base).rstrip("/")
        elif segment not in (".", ""):
            base = f"{base}/{segment}"
    return urlunsplit((parts.scheme, parts.netloc, base, parts.query, parts.fragment))


@dataclass(frozen=True)
class RemoteRefs:
    """``ls-remote`` output: ref name → commit (annotated tags already peeled to their commit)."""

    refs: Mapping[str, str]

    def get(self, ref: str) -> str | None:
        return self.refs.get(ref)

    def tags(self) -> dict[str, str]:
        prefix = "refs/tags/"
        return {name[len(prefix) :]: sha for name, sha in self.refs.items() if name.startswith(prefix)}


def parse_ls_remote(text: str) -> RemoteRefs:
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if not name:
            continue
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            refs[name] = sha
    refs.update(peeled)
    return RemoteRefs(refs)


USED_MARKER = "sluice-last-used"


def _touch(marker: Path) -> None:
    marker.touch()
    os.utime(marker)


def _last_used(mirror: Path) -> float:
    for candidate in (mirror / USED_MARKER, mirror):
        with contextlib.suppress(OSError):
            return candidate.stat().st_mtime
    return 0.0


def _remove_stale_locks(mirror: Path) -> None:
    """Remove ``*.lock`` files a killed git left in ``mirror`` (only call while holding its lock)."""
    for directory, _, files in os.walk(mirror):
        for name in files:
            if name.endswith(".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))


@dataclass
class MirrorCache:
    root: Path
    git: Git = field(default_factory=Git)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)

    def path_for(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode()).hexdigest()[:40] + ".git")

    @asynccontextmanager
    async def locked(self, url: str) -> AsyncIterator[Path]:
        """Hold the URL's mirror (created when missing) for a sequence of operations."""
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            path = self.path_for(url)
            self._urls[path.name] = url
            if not (path / "HEAD").exists():
                await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
                await self.git.run(["init", "--quiet", "--bare", str(path)], what="creating the git cache")
            await asyncio.to_thread(_touch, path / USED_MARKER)
            yield path

    async def prune(self, max_idle: float) -> list[Path]:
        """Delete the mirrors nobody used for ``max_idle`` seconds; returns what was deleted."""
        if not await asyncio.to_thread(self.root.is_dir):
            return []
        now = time.time()
        deleted = []
        for path in sorted(await asyncio.to_thread(lambda: list(self.root.glob("*.git")))):
            url = self._urls.get(path.name)
            lock = self._locks.get(url) if url is not None else None
            if lock is not None and lock.locked():
                continue
            if now - await asyncio.to_thread(_last_used, path) < max_idle:
                continue
            async with lock if lock is not None else contextlib.nullcontext():
                if time.time() - await asyncio.to_thread(_last_used, path) < max_idle:
                    continue  # used while we waited for it
                await asyncio.to_thread(shutil.rmtree, path, True)
            deleted.append(path)
        return deleted

    async def ls_remote(
        self,
        url: str,
        patterns: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> RemoteRefs:
        """The remote's refs matching ``patterns`` (``refs/heads/main``, ``refs/tags/*`` …)."""
        result = await self.git.run(
            ["ls-remote", "--", url, *patterns],
            env=env,
            timeout=timeout,
            what=f"unable to list references of '{redact_url(url)}'",
        )
        return parse_ls_remote(result.text)

    async def check_access(
        self, url: str, *, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> None:
        """Prove these credentials may read ``url`` (one ``ls-remote`` of HEAD) before handing out
        objects another user's fetch put in the shared mirror."""
        await self.ls_remote(url, ["HEAD"], env=env, timeout=timeout)

    async def fetch(
        self,
        mirror: Path,
        url: str,
        refspecs: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        depth: int | None = 1,
    ) -> None:
        """Fetch ``refspecs`` from ``url`` into ``mirror`` (hold :meth:`locked`).

        A fetch killed half-way (a timeout, a crash) can leave lock files or a damaged mirror
        behind; a failure that is not about the remote (auth, host key, missing repository,
        timeout) therefore clears stale locks and retries once, and if that fails too, starts
        the mirror afresh — so one bad fetch never wedges the cache for good."""
        args = ["--git-dir", str(mirror), "fetch", "--quiet", "--no-tags", "--force", "--no-write-fetch-head"]
        if depth:
            args.append(f"--depth={depth}")
        command = [*args, "--", url, *refspecs]
        what = f"unable to fetch '{redact_url(url)}'"
        try:
            await self.git.run(command, env=env, timeout=timeout, what=what)
            return
        except GitError as exc:
            if exc.kind != "other":
                raise
        await asyncio.to_thread(_remove_stale_locks, mirror)
        try:
            await self.git.run(command, env=env, timeout=timeout, what=what)
            return
        except GitError as exc:
            if exc.kind != "other":
                raise
        await asyncio.to_thread(shutil.rmtree, mirror, True)
        await self.git.run(["init", "--quiet", "--bare", str(mirror)], what="re-creating the git cache")
        await self.git.run(command, env=env, timeout=timeout, what=what)

    async def has_commit(self, mirror: Path, commit: str) -> bool:
        try:
            await self.git.run(
                ["--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"],
                what="looking up a commit",
            )
        except GitError:
            return False
        return True

    async def rev_parse(self, mirror: Path, ref: str) -> str:
        result = await self.git.run(
            ["--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            what=f"resolving '{ref}'",
        )
        return result.text.strip()

    async def subject(self, mirror: Path, commit: str) -> str:
        """The first line of the commit message."""
        result = await self.git.run(
            ["--git-dir", str(mirror), "log", "-1", "--format=%s", commit], what="reading the commit"
        )
        return result.text.strip()

    async def is_ancestor(self, mirror: Path, commit: str, ref: str) -> bool:
        try:
            await self.git.run(
                ["--git-dir", str(mirror), "merge-base", "--is-ancestor", commit, ref],
                what="checking ancestry",
            )
        except GitError:
            return False
        return True

    async def export(self, mirror: Path, commit: str, dest: Path, *, timeout: float | None = None) -> None:
        """Write the tree of ``commit`` into the empty directory ``dest``."""
        fd, index = tempfile.mkstemp(prefix="sluice-index-", dir=str(dest.parent))
        os.close(fd)
        os.unlink(index)
        try:
            await self.git.run(
                [
                    "--git-dir",
                    str(mirror),
                    "--work-tree",
                    str(dest),
                    "checkout",
                    "--quiet",
                    "--force",
                    commit,
                    "--",
                    ".",
                ],
                env={"GIT_INDEX_FILE": index},
                timeout=timeout,
                what=f"unable to check out commit '{commit}'",
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(index)

    async def submodules(self, mirror: Path, commit: str) -> list[Submodule]:
        """The submodules ``commit`` pins (its ``.gitmodules`` plus the gitlinks of its tree)."""
        tree = await self.git.run(
            ["--git-dir", str(mirror), "ls-tree", "-r", "-z", commit], what="listing the tree"
        )
        links: dict[str, str] = {}
        for entry in tree.text.split("\0"):
            info, _, path = entry.partition("\t")
            fields = info.split()
            if len(fields) == 3 and fields[0] == "160000":
                links[path] = fields[2]
        if not links:
            return []
        try:
            config = await self.git.run(
                [
                    "--git-dir",
                    str(mirror),
                    "config",
                    "--blob",
                    f"{commit}:.gitmodules",
                    "--get-regexp",
                    r"^submodule\..*\.(path|url)$",
                ],
                what="reading .gitmodules",
            )
        except GitError:
            raise GitError(f"commit {commit} has submodules but no usable .gitmodules") from None
        paths: dict[str, str] = {}
        urls: dict[str, str] = {}
        for line in config.text.splitlines():
            key, _, value = line.partition(" ")
            name, _, attribute = key.removeprefix("submodule.").rpartition(".")
            (paths if attribute == "path" else urls)[name] = value
        found = []
        for name, path in sorted(paths.items()):
            if path in links and name in urls:
                found.append(Submodule(path, urls[name], links[path]))
        return found
