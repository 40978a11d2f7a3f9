"""Deterministic tar.gz archives, their digests, and extraction that stays inside its root.

Packing is deterministic so that an unchanged tree always yields the same ``sha256:`` digest (and
therefore the same content-addressed artifact): entries are sorted by path; mtime, uid, gid,
uname and gname are zeroed; modes are normalised to 0644 (0755 for directories and executables);
the gzip header carries no timestamp and no file name.

Extraction treats the archive as hostile: absolute names, ``..`` components, links resolving
outside the destination, device/FIFO entries and archives bigger than the limits are rejected
with an :class:`ArchiveError` naming the entry. Sizes are checked from each entry's header before
its content is decompressed, and the decompressed stream as a whole is metered as it is read, so
a gzip bomb is stopped early rather than after inflating.

All functions here are blocking; async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from libs.common.artifacts.errors import ArchiveError

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 512 * MiB
DEFAULT_MAX_FILES = 100_000
DIGEST_ALGORITHM = "sha256"

_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_DIR_MODE = 0o755
_LINK_MODE = 0o777
_GZIP_LEVEL = 6
_CHUNK = MiB
# Tar headers, padding and PAX records are not file content but still cost decompression work:
# the whole decompressed stream may exceed ``max_bytes`` by at most this much per entry (plus a
# fixed allowance for the end-of-archive blocks and record padding).
_HEADER_ALLOWANCE_PER_ENTRY = 1536
_HEADER_ALLOWANCE_FIXED = MiB


def digest_of(data: bytes) -> str:
    """The artifact digest of ``data``: ``"sha256:<hex>"``."""
    return f"{DIGEST_ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


# --- packing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class _Entry:
    rel: str  # POSIX path relative to the root, without a trailing slash
    kind: bytes  # tarfile.REGTYPE / DIRTYPE / SYMTYPE
    source: str = ""  # absolute path of a file's content on disk
    linkname: str = ""
    mode: int = _FILE_MODE
    size: int = 0
    data: bytes = b""  # content of an in-memory file (pack_files)


def pack_dir(root: Path, *, exclude: Callable[[str], bool] | None = None) -> bytes:
    """Pack the tree under ``root`` into a deterministic tar.gz.

    ``exclude(relpath)`` is called with POSIX paths relative to ``root``; directories get a
    trailing ``/`` and an excluded directory is not descended. Symlinks are archived as symlinks
    when their target stays inside ``root`` (relative target, resolving inside); any other symlink,
    and any special file (socket, FIFO, device) that is not excluded, raises :class:`ArchiveError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise ArchiveError(f"{root}: not a directory")
    real_root = os.path.realpath(root)
    entries = sorted(_walk(root, real_root, exclude))
    return _write_tar_gz(entries)


def pack_files(files: Mapping[str, bytes]) -> bytes:
    """Pack in-memory files (POSIX relative path → content) into a deterministic tar.gz.

    Parent directories are implied, not stored. Names must be relative and free of ``..``.
    """
    entries: dict[str, _Entry] = {}
    for name, content in files.items():
        rel = _relative_member_path(name)
        if rel is None:
            raise ArchiveError(f"{name!r}: not a file name")
        if rel in entries:
            raise ArchiveError(f"{name!r}: given twice")
        entries[rel] = _Entry(rel, tarfile.REGTYPE, mode=_FILE_MODE, size=len(content), data=content)
    return _write_tar_gz(sorted(entries.values()))


def _walk(root: Path, real_root: str, exclude: Callable[[str], bool] | None) -> Iterable[_Entry]:
    pending: list[tuple[str, str]] = [(str(root), "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            raise ArchiveError(f"{prefix or '.'}: cannot list directory: {exc.strerror}") from exc
        for child in children:
            rel = prefix + child.name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if exclude is not None and exclude(rel + "/"):
                    continue
                yield _Entry(rel, tarfile.DIRTYPE, mode=_DIR_MODE)
                pending.append((child.path, rel + "/"))
                continue
            if exclude is not None and exclude(rel):
                continue
            if stat.S_ISREG(st.st_mode):
                mode = _EXEC_MODE if st.st_mode & stat.S_IXUSR else _FILE_MODE
                yield _Entry(rel, tarfile.REGTYPE, source=child.path, mode=mode, size=st.st_size)
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(child.path)
                _check_packed_link(rel, target, child.path, real_root)
                yield _Entry(rel, tarfile.SYMTYPE, linkname=target, mode=_LINK_MODE)
            else:
                raise ArchiveError(f"{rel}: unsupported file type (only files, directories and symlinks)")


def _check_packed_link(rel: str, target: str, path: str, real_root: str) -> None:
    if posixpath.isabs(target):
        raise ArchiveError(f"{rel}: symlink target {target!r} is absolute")
    if _escapes(posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))):
        raise ArchiveError(f"{rel}: symlink target {target!r} leaves the root")
    if not _is_within(os.path.realpath(path), real_root):
        raise ArchiveError(f"{rel}: symlink target {target!r} resolves outside the root")


def _write_tar_gz(entries: Iterable[_Entry]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            info = tarfile.TarInfo(entry.rel)
            info.type = entry.kind
            info.mode = entry.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.linkname = entry.linkname
            if entry.kind != tarfile.REGTYPE:
                tar.addfile(info)
                continue
            info.size = entry.size
            if not entry.source:
                tar.addfile(info, io.BytesIO(entry.data))
                continue
            try:
                with open(entry.source, "rb") as content:
                    tar.addfile(info, content)
            except OSError as exc:
                # tarfile reports a file that shrank while being read as a bare OSError.
                reason = exc.strerror or str(exc)
                raise ArchiveError(f"{entry.rel}: cannot archive: {reason}") from exc
    return buffer.getvalue()


# --- extraction ------------------------------------------------------------------------------------


def safe_extract(
    data: bytes,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> None:
    """Extract a tar.gz (or plain tar) into ``dest``, refusing anything that would escape it.

    Rejected, with an :class:`ArchiveError` naming the entry: absolute names, ``..`` components,
    symlinks whose target is absolute or resolves outside ``dest``, hard links to anything but a
    regular file earlier in the archive, device/FIFO entries, more than ``max_files`` entries and
    more than ``max_bytes`` of file content. Modes are normalised (0644/0755); ownership and
    timestamps from the archive are ignored. On a symlink violation the links created by this
    call are removed again; other partially extracted content is left for the caller to discard.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(os.path.realpath(dest), max_bytes=max_bytes, max_files=max_files)
    raw: _Readable = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    limit = max_bytes + max_files * _HEADER_ALLOWANCE_PER_ENTRY + _HEADER_ALLOWANCE_FIXED
    stream = _MeteredReader(raw, limit, extractor.describe_position)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                extractor.add(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"corrupt archive{extractor.describe_position()}: {exc}") from exc
    finally:
        raw.close()
    extractor.create_symlinks()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _MeteredReader:
    """A read-only file object that fails once more than ``limit`` bytes were read through it."""

    def __init__(self, raw: _Readable, limit: int, where: Callable[[], str]) -> None:
        self._raw = raw
        self._limit = limit
        self._where = where
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        allowed = self._limit - self._count + 1
        chunk = self._raw.read(allowed if size < 0 else min(size, allowed))
        self._count += len(chunk)
        if self._count > self._limit:
            raise ArchiveError(f"archive decompresses to more than {self._limit} bytes{self._where()}")
        return chunk


class _Extractor:
    def __init__(self, root: str, *, max_bytes: int, max_files: int) -> None:
        self._root = root
        self._max_bytes = max_bytes
        self._max_files = max_files
        self._entries = 0
        self._content_bytes = 0
        self._last_name: str | None = None
        self._files: dict[str, int] = {}  # regular files written so far: rel → size
        self._symlinks: dict[str, str] = {}  # symlinks to create once all content is written

    def describe_position(self) -> str:
        return "" if self._last_name is None else f" (after entry {self._last_name!r})"

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        self._entries += 1
        if self._entries > self._max_files:
            raise ArchiveError(f"{name!r}: archive has more than {self._max_files} entries")
        rel = _relative_member_path(name)
        if member.isdir():
            if rel is not None:
                self._check_not_through_symlink(name, rel, include_self=True)
                self._files.pop(rel, None)
                self._ensure_dirs(name, rel.split("/"))
        elif rel is None:
            raise ArchiveError(f"{name!r}: entry has no file name")
        elif member.isreg():
            self._write_file(tar, member, name, rel)
        elif member.issym():
            self._add_symlink(member, name, rel)
        elif member.islnk():
            self._copy_hardlink(member, name, rel)
        else:
            raise ArchiveError(f"{name!r}: {_describe_type(member)} entries are not allowed")
        self._last_name = name

    def _count_content(self, name: str, size: int) -> None:
        self._content_bytes += size
        if self._content_bytes > self._max_bytes:
            raise ArchiveError(f"{name!r}: archive content exceeds {self._max_bytes} bytes")

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, rel: str) -> None:
        self._count_content(name, member.size)
        path = self._prepare_leaf(name, rel)
        content = tar.extractfile(member)
        if content is None:  # not reachable for regular files; kept for the type checker
            raise ArchiveError(f"{name!r}: no content")
        mode = _EXEC_MODE if member.mode & 0o111 else _FILE_MODE
        with content, _create_exclusive(path, mode) as out:
            while chunk := content.read(_CHUNK):
                out.write(chunk)
        self._files[rel] = member.size

    def _copy_hardlink(self, member: tarfile.TarInfo, name: str, rel: str) -> None:
        try:
            target = _relative_member_path(member.linkname)
        except ArchiveError:
            raise ArchiveError(f"{name!r}: hard link to {member.linkname!r} leaves the destination") from None
        if target is None or target not in self._files:
            raise ArchiveError(
                f"{name!r}: hard link to {member.linkname!r}, which is not a regular file earlier in the archive"
            )
        self._count_content(name, self._files[target])
        source = os.path.join(self._root, *target.split("/"))
        path = self._prepare_leaf(name, rel)
        mode = stat.S_IMODE(os.lstat(source).st_mode)
        with open(source, "rb") as content, _create_exclusive(path, mode) as out:
            while chunk := content.read(_CHUNK):
                out.write(chunk)
        self._files[rel] = self._files[target]

    def _add_symlink(self, member: tarfile.TarInfo, name: str, rel: str) -> None:
        target = member.linkname
        if not target:
            raise ArchiveError(f"{name!r}: symlink with an empty target")
        if posixpath.isabs(target):
            raise ArchiveError(f"{name!r}: symlink to absolute path {target!r}")
        if _escapes(posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))):
            raise ArchiveError(f"{name!r}: symlink target {target!r} leaves the destination")
        self._check_not_through_symlink(name, rel, include_self=False)
        parts = rel.split("/")
        self._ensure_dirs(name, parts[:-1])
        self._files.pop(rel, None)
        # Created after every file is written, so no entry is ever written through a link from
        # this archive and each link can be resolved against the finished tree.
        self._symlinks.pop(rel, None)
        self._symlinks[rel] = target

    def create_symlinks(self) -> None:
        created: list[tuple[str, str]] = []
        try:
            for rel, target in self._symlinks.items():
                parts = rel.split("/")
                self._ensure_dirs(rel, parts[:-1])
                path = os.path.join(self._root, *parts)
                self._remove_leaf(rel, path)
                os.symlink(target, path)
                created.append((rel, path))
            for rel, path in created:
                if not _is_within(os.path.realpath(path), self._root):
                    raise ArchiveError(
                        f"{rel!r}: symlink target {self._symlinks[rel]!r} resolves outside the destination"
                    )
        except BaseException:
            for _, path in created:
                if os.path.islink(path):
                    os.unlink(path)
            raise

    def _check_not_through_symlink(self, name: str, rel: str, *, include_self: bool) -> None:
        parts = rel.split("/")
        stop = len(parts) if include_self else len(parts) - 1
        for i in range(1, stop + 1):
            prefix = "/".join(parts[:i])
            if prefix in self._symlinks:
                raise ArchiveError(f"{name!r}: path goes through symlink {prefix!r}")

    def _prepare_leaf(self, name: str, rel: str) -> str:
        self._check_not_through_symlink(name, rel, include_self=False)
        self._symlinks.pop(rel, None)  # a later entry replaces an earlier one of the same name
        parts = rel.split("/")
        self._ensure_dirs(name, parts[:-1])
        path = os.path.join(self._root, *parts)
        self._remove_leaf(name, path)
        return path

    def _remove_leaf(self, name: str, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"{name!r}: a directory of that name already exists")
        os.unlink(path)

    def _ensure_dirs(self, name: str, parts: list[str]) -> None:
        current = self._root
        for part in parts:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, _DIR_MODE)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ArchiveError(f"{name!r}: parent {part!r} is a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(f"{name!r}: parent {part!r} is not a directory")


def _create_exclusive(path: str, mode: int) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    os.fchmod(fd, mode)
    return os.fdopen(fd, "wb")


def _relative_member_path(name: str) -> str | None:
    """``name`` as a clean relative POSIX path, ``None`` for the root itself; rejects escapes."""
    if name.startswith("/"):
        raise ArchiveError(f"{name!r}: absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{name!r}: path traversal ('..')")
    return "/".join(parts) or None


def _describe_type(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"type {member.type!r}"


def _escapes(normalized: str) -> bool:
    return normalized == ".." or normalized.startswith("../")


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
