"""The one place the CLI learns its version: the installed package's metadata (pyproject.toml)."""

from __future__ import annotations

import importlib.metadata


def _installed_version() -> str:
    try:
        return importlib.metadata.version("sluice")
    except importlib.metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "0.0.0+unknown"


VERSION = _installed_version()
