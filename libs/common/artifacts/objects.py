"""What every artifact store implements: the :class:`ArtifactStore` protocol and :class:`StoredObject`."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from libs.common.artifacts.errors import InvalidArtifactPath


@dataclass(frozen=True)
class StoredObject:
    """One object in a store.

    ``digest`` (``sha256:<hex>``) is set after ``put`` and by ``stat`` on stores that keep or can
    compute it (a local file is hashed; an S3 object carries it in its metadata when Sluice wrote
    it); ``list`` leaves it ``None`` rather than read every object.
    """

    path: str
    size: int
    digest: str | None = None
    last_modified: datetime | None = None


@runtime_checkable
class ArtifactStore(Protocol):
    """Byte objects under relative POSIX paths (``<kind>/<namespace>/<name>/<file>``).

    Paths are validated by :func:`clean_path`; an absolute path or one with ``..`` raises
    :class:`InvalidArtifactPath`. All methods are safe to call from the event loop: blocking work runs
    in threads.
    """

    async def put(self, path: str, data: bytes) -> StoredObject:
        """Store ``data`` at ``path`` (replacing any object there) atomically."""
        ...

    async def get(self, path: str) -> bytes:
        """The content at ``path``; :class:`ArtifactNotFound` when there is none."""
        ...

    async def stat(self, path: str) -> StoredObject:
        """Size, modification time and (when known) digest of ``path``; :class:`ArtifactNotFound`."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether an object is stored at ``path``."""
        ...

    async def delete(self, path: str) -> None:
        """Remove the object at ``path``; removing a missing object is not an error."""
        ...

    async def list(self, prefix: str) -> builtins.list[StoredObject]:
        """Objects whose path starts with ``prefix`` (a plain string prefix), sorted by path."""
        ...


def clean_path(path: str) -> str:
    """``path`` as a normalised relative POSIX path; rejects absolute paths, ``..`` and empty names."""
    if not path or "\x00" in path or "\\" in path:
        raise InvalidArtifactPath(f"invalid artifact path {path!r}")
    if path.startswith("/"):
        raise InvalidArtifactPath(f"artifact path {path!r} is absolute")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArtifactPath(f"artifact path {path!r} climbs out of the store")
    if not parts:
        raise InvalidArtifactPath(f"invalid artifact path {path!r}")
    return "/".join(parts)


def clean_prefix(prefix: str) -> str:
    """A listing prefix: like :func:`clean_path`, but empty is allowed and a trailing ``/`` is kept."""
    if prefix in ("", "/", "."):
        return ""
    cleaned = clean_path(prefix)
    return cleaned + "/" if prefix.endswith("/") else cleaned


def content_type_for(path: str) -> str:
    """The media type an artifact is stored and served with, from its file name."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith((".tar.gz", ".tgz", ".gz")):
        return "application/gzip"
    if name.endswith((".yaml", ".yml")):
        return "application/yaml"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".tar"):
        return "application/x-tar"
    return "application/octet-stream"


def display_url(url: str) -> str:
    """``url`` without userinfo, query string or fragment: safe to put in a message or a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
