"""RFC 7386 JSON merge patch (``application/merge-patch+json``)."""

from __future__ import annotations

from typing import Any

from libs.kpatch._json import deep_copy


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch to ``target`` and return the result; neither input is modified.

    An object patch merges key by key into the target (a non-object target is first replaced by an
    empty object); a ``null`` value deletes the key; any other patch value replaces the target.
    """
    return _merge_in_place(deep_copy(target), patch)


def _merge_in_place(target: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``target``, which the caller owns and which may be reused for the result."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result: dict[str, Any] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_in_place(result.get(key), value)
    return result
