"""`sluice bootstrap git`: Sluice installed into a cluster and managing itself from a Git repository."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: Top-level command name → its implementation (see libs/cli/main.py).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub: Any) -> None:
    """Register this module's commands on the top-level subparsers."""
