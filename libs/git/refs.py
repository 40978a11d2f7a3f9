"""Flux's Git references: which remote ref a ``spec.ref`` names, and the revision string of a commit.

Precedence (low → high): branch < tag < semver < name < commit; nothing set means branch
``master`` (Flux's documented default). Revisions: ``<branch>@sha1:<hex>``, ``<tag>@sha1:<hex>``
(semver: the tag it resolved to), ``<full ref name>@sha1:<hex>`` for ``name``, ``sha1:<hex>`` for
a commit alone (with a branch: ``<branch>@sha1:<hex>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libs.git.cli import GitError
from libs.git.mirror import RemoteRefs
from libs.git.semver import Constraint, InvalidConstraint, highest

__all__ = ["DEFAULT_BRANCH", "GitRef", "RefNotFound", "Resolved", "revision"]

DEFAULT_BRANCH = "master"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class RefNotFound(GitError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "ref_not_found")


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to a commit: ``remote_ref`` is what to fetch (None: the commit itself)."""

    remote_ref: str | None
    commit: str
    revision: str
    tag: str | None = None


def _algo(commit: str) -> str:
    return "sha256" if len(commit) == 64 else "sha1"


def revision(name: str | None, commit: str) -> str:
    """Flux's revision string: ``<name>@sha1:<hex>`` or ``sha1:<hex>`` without a name."""
    digest = f"{_algo(commit)}:{commit}"
    return f"{name}@{digest}" if name else digest


@dataclass(frozen=True)
class GitRef:
    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    name: str | None = None
    commit: str | None = None

    @property
    def mode(self) -> str:
        """The field that decides: ``commit``, ``name``, ``semver``, ``tag`` or ``branch``."""
        for field_name in ("commit", "name", "semver", "tag"):
            if getattr(self, field_name):
                return field_name
        return "branch"

    @property
    def branch_or_default(self) -> str:
        return self.branch or DEFAULT_BRANCH

    def validate(self) -> None:
        """Raise ValueError for a reference that can never resolve (a stalling spec error)."""
        if self.commit and not _SHA.match(self.commit.lower()):
            raise ValueError(
                f"spec.ref.commit {self.commit!r} is not a full commit hash (40 or 64 hex digits)"
            )
        if self.mode == "semver":
            try:
                Constraint.parse(self.semver or "")
            except InvalidConstraint as exc:
                raise ValueError(f"spec.ref.semver: {exc}") from None
        if self.mode == "name" and not (self.name or "").startswith("refs/"):
            raise ValueError(f"spec.ref.name {self.name!r} must be a full reference starting with refs/")

    def ls_remote_patterns(self) -> list[str]:
        """What ``ls-remote`` must list to resolve this reference (empty for a commit)."""
        mode = self.mode
        if mode == "commit":
            return []
        if mode == "name":
            return [self.name or ""]
        if mode == "semver":
            return ["refs/tags/*"]
        if mode == "tag":
            return [f"refs/tags/{self.tag}"]
        return [f"refs/heads/{self.branch_or_default}"]

    def resolve(self, remote: RemoteRefs) -> Resolved:
        """Resolve against ``ls-remote`` output; raise :class:`RefNotFound` when the ref is missing."""
        mode = self.mode
        if mode == "name":
            name = self.name or ""
            sha = remote.get(name)
            if sha is None:
                raise RefNotFound(f"unable to resolve ref '{name}' to a specific commit")
            return Resolved(name, sha, revision(name, sha))
        if mode == "semver":
            tags = remote.tags()
            tag = highest(tags, self.semver or "")
            if tag is None:
                raise RefNotFound(f"no match found for semver: {self.semver}")
            return Resolved(f"refs/tags/{tag}", tags[tag], revision(tag, tags[tag]), tag)
        if mode == "tag":
            sha = remote.get(f"refs/tags/{self.tag}")
            if sha is None:
                raise RefNotFound(f"unable to resolve tag '{self.tag}' to a commit: tag not found")
            return Resolved(f"refs/tags/{self.tag}", sha, revision(self.tag, sha), self.tag)
        branch = self.branch_or_default
        sha = remote.get(f"refs/heads/{branch}")
        if sha is None:
            raise RefNotFound(f"unable to clone: couldn't find remote ref 'refs/heads/{branch}'")
        return Resolved(f"refs/heads/{branch}", sha, revision(branch, sha))

    def pinned(self) -> Resolved:
        """The resolution of a ``commit`` reference (no remote lookup needed)."""
        commit = (self.commit or "").lower()
        return Resolved(
            f"refs/heads/{self.branch}" if self.branch else None, commit, revision(self.branch, commit)
        )
