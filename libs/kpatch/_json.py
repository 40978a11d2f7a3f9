"""Small helpers shared by the patch flavours: copying JSON values and comparing them as JSON does."""

from __future__ import annotations

import copy
from typing import Any


def deep_copy(value: Any) -> Any:
    """A copy of a JSON value that shares no containers with ``value``."""
    return copy.deepcopy(value)


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON defines it: ``true`` is not ``1``, ``1`` equals ``1.0``, order matters in arrays only."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if type(left) is not type(right):
        return False
    return bool(left == right)
