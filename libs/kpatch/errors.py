"""The one exception type the library raises."""

from __future__ import annotations


class PatchError(ValueError):
    """A patch could not be applied; the message names the operation and the path that failed."""
