"""Errors raised by the artifact store, the archive helpers and the artifact HTTP client.

Every message names the artifact path, archive entry or (sanitized) URL concerned and never
carries credentials, so it can go into a status condition or an event as is.
"""

from __future__ import annotations


class ArtifactError(Exception):
    """Base class: storing, serving or fetching an artifact failed."""


class ArtifactNotFound(ArtifactError, LookupError):
    """The artifact does not exist in the store (or the server answered 404)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"artifact not found: {path}")
        self.path = path


class InvalidArtifactPath(ArtifactError, ValueError):
    """A storage path is absolute, empty, or climbs out of the store with ``..``."""


class ArchiveError(ArtifactError, ValueError):
    """An archive cannot be packed or is unsafe to extract; the message names the entry."""


class InvalidStoreURL(ArtifactError, ValueError):
    """An artifact store URL cannot be used; the message never repeats credentials or query values."""
