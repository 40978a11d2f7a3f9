"""`sluice tree|build|diff kustomization NAME`: look at what a Kustomization applies, and would apply."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: Top-level command name → its implementation (see libs/cli/main.py).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub: Any) -> None:
    """Register this module's commands on the top-level subparsers."""
