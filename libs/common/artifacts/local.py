"""An artifact store in a local directory (``sluice up``, tests, single-node installs)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from libs.common.artifacts.archive import DIGEST_ALGORITHM, digest_of
from libs.common.artifacts.errors import ArtifactNotFound, InvalidArtifactPath
from libs.common.artifacts.objects import StoredObject, clean_path, clean_prefix

# Temporary files of in-flight writes; never listed, and removed if the write fails.
_TMP_PREFIX = ".sluice-tmp-"
_FILE_MODE = 0o644


class LocalStore:
    """Artifacts as files under ``root``.

    Writes go to a temporary file in the target directory and are renamed into place, so readers see
    either the old or the new content, never a partial file. Every path is confined to ``root``:
    ``..`` and absolute paths are rejected, and so is a path that resolves outside ``root`` through a
    symlink. :meth:`stat` reads the file to report its digest (so a served artifact always has an
    ``ETag``); :meth:`list` does not.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    def _locate(self, path: str) -> tuple[str, str]:
        rel = clean_path(path)
        full = os.path.join(self._real_root, *rel.split("/"))
        real = os.path.realpath(full)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise InvalidArtifactPath(f"artifact path {path!r} resolves outside the store")
        return rel, full

    async def put(self, path: str, data: bytes) -> StoredObject:
        rel, full = self._locate(path)
        return await asyncio.to_thread(self._put, rel, full, data)

    def _put(self, rel: str, full: str, data: bytes) -> StoredObject:
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, full)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(
            path=rel,
            size=len(data),
            digest=digest_of(data),
            last_modified=_mtime(os.stat(full)),
        )

    async def get(self, path: str) -> bytes:
        rel, full = self._locate(path)
        return await asyncio.to_thread(self._get, rel, full)

    @staticmethod
    def _get(rel: str, full: str) -> bytes:
        try:
            with open(full, "rb") as content:
                return content.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(rel) from None

    async def stat(self, path: str) -> StoredObject:
        rel, full = self._locate(path)
        return await asyncio.to_thread(self._stat, rel, full)

    @staticmethod
    def _stat(rel: str, full: str) -> StoredObject:
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactNotFound(rel) from None
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactNotFound(rel)
        try:
            with open(full, "rb") as content:
                digest = hashlib.file_digest(content, DIGEST_ALGORITHM).hexdigest()
        except FileNotFoundError:
            raise ArtifactNotFound(rel) from None
        return StoredObject(
            path=rel, size=st.st_size, digest=f"{DIGEST_ALGORITHM}:{digest}", last_modified=_mtime(st)
        )

    async def exists(self, path: str) -> bool:
        _, full = self._locate(path)
        return await asyncio.to_thread(os.path.isfile, full)

    async def delete(self, path: str) -> None:
        _, full = self._locate(path)
        await asyncio.to_thread(self._delete, full)

    @staticmethod
    def _delete(full: str) -> None:
        # Nothing stored there: deleting is idempotent.
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            os.unlink(full)

    async def list(self, prefix: str) -> builtins.list[StoredObject]:
        cleaned = clean_prefix(prefix)
        return await asyncio.to_thread(self._list, cleaned)

    def _list(self, prefix: str) -> builtins.list[StoredObject]:
        # Walk only the deepest directory the prefix names; the rest of the prefix filters names.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = os.path.join(self._real_root, *base_rel.split("/")) if base_rel else self._real_root
        real_base = os.path.realpath(base)
        if real_base != self._real_root and not real_base.startswith(self._real_root + os.sep):
            raise InvalidArtifactPath(f"listing prefix {prefix!r} resolves outside the store")
        found: builtins.list[StoredObject] = []
        for directory, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for filename in filenames:
                if filename.startswith(_TMP_PREFIX):
                    continue
                full = os.path.join(directory, filename)
                rel = os.path.relpath(full, self._real_root).replace(os.sep, "/")
                if not rel.startswith(prefix):
                    continue
                try:
                    st = os.lstat(full)
                except FileNotFoundError:
                    continue  # deleted while listing
                if stat.S_ISREG(st.st_mode):
                    found.append(StoredObject(path=rel, size=st.st_size, last_modified=_mtime(st)))
        found.sort(key=lambda obj: obj.path)
        return found


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)
