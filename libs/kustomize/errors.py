"""The one exception type of the package."""

from __future__ import annotations


class KustomizeError(Exception):
    """A build failed; the message is one line naming the file or field and the problem."""
