"""File access confined the way kustomize's default loader confines it (LoadRestrictionsRootOnly).

A loader is rooted at one kustomization directory. Files it reads must resolve (symlinks
included) to a path inside that directory; other kustomization directories (bases,
components) may sit anywhere, but not at or above a directory already being built (a cycle).
"""

from __future__ import annotations

import os
from pathlib import Path

from libs.kustomize.errors import KustomizeError

KUSTOMIZATION_FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class LoaderError(KustomizeError):
    """A file or directory could not be loaded; the message follows kustomize's wording."""


def _eval(path: str) -> str:
    """filepath.EvalSymlinks with kustomize's error text."""
    if not os.path.lexists(path):
        raise LoaderError(f"evalsymlink failure on '{path}' : lstat {path}: no such file or directory")
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        raise LoaderError(f"evalsymlink failure on '{path}' : {exc.strerror}") from None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Loader:
    def __init__(self, root: str, referrer: Loader | None = None) -> None:
        self.root = root
        self.referrer = referrer

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Loader:
        raw = os.path.abspath(os.fspath(path))
        try:
            resolved = _eval(raw)
        except LoaderError as exc:
            raise LoaderError(f"must build at directory: not a valid directory: {exc}") from None
        if not os.path.isdir(resolved):
            raise LoaderError(f"must build at directory: '{resolved}': file is not directory")
        return cls(resolved)

    def join(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.root, path))

    def read(self, path: str) -> bytes:
        """Read a file named relative to the root; it must stay inside the root."""
        full = self.join(path)
        resolved = _eval(full)
        if os.path.isdir(resolved):
            raise LoaderError(f"'{full}' must resolve to a file")
        if not _within(resolved, self.root):
            raise LoaderError(f"security; file '{full}' is not in or below '{self.root}'")
        try:
            return Path(resolved).read_bytes()
        except OSError as exc:
            raise LoaderError(f"cannot read '{full}': {exc.strerror}") from None

    def new(self, path: str) -> Loader:
        """A loader for the kustomization directory ``path`` (a base or a component)."""
        full = self.join(path)
        try:
            resolved = _eval(full)
        except LoaderError as exc:
            raise LoaderError(f"must build at directory: not a valid directory: {exc}") from None
        if not os.path.isdir(resolved):
            raise LoaderError(f"must build at directory: '{full}': file is not directory")
        self._check_cycle(resolved)
        return Loader(resolved, self)

    def _check_cycle(self, candidate: str) -> None:
        loader: Loader | None = self
        while loader is not None:
            if _within(loader.root, candidate):
                raise LoaderError(
                    f"cycle detected: candidate root '{candidate}' contains visited root '{loader.root}'"
                )
            loader = loader.referrer

    def kustomization_file(self) -> str:
        found = [n for n in KUSTOMIZATION_FILE_NAMES if os.path.isfile(os.path.join(self.root, n))]
        if not found:
            quoted = ", ".join(f"'{n}'" for n in KUSTOMIZATION_FILE_NAMES[:-1])
            raise LoaderError(
                f"unable to find one of {quoted} or '{KUSTOMIZATION_FILE_NAMES[-1]}' "
                f"in directory '{self.root}'"
            )
        if len(found) > 1:
            raise LoaderError(f"Found multiple kustomization files under: {self.root}")
        return found[0]
