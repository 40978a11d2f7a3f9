"""RFC 6902 JSON patch (``application/json-patch+json``) with RFC 6901 JSON Pointers.

Operations apply one after another to a private copy of the document; the first failing operation
raises :class:`PatchError` naming its index, ``op`` and path, and the caller's document is untouched.
"""

from __future__ import annotations

import re
from typing import Any

from libs.kpatch._json import deep_copy, json_equal
from libs.kpatch.errors import PatchError

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_APPEND = "-"

# Which members each operation needs besides "op" and "path".
_REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON Pointer into unescaped reference tokens (``""`` is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}: must be empty or start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise PatchError(f"invalid JSON pointer {pointer!r}: '~' must be followed by '0' or '1'")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """The value ``pointer`` designates inside ``doc``; :class:`PatchError` if there is none."""
    value = doc
    for token in parse_pointer(pointer):
        value = _child(value, token, pointer)
    return value


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 operations to ``doc`` and return the patched document; ``doc`` is not modified."""
    if not isinstance(ops, list):
        raise PatchError(f"JSON patch must be a list of operations, got {type(ops).__name__}")
    result = deep_copy(doc)
    for index, op in enumerate(ops):
        result = _apply_operation(result, op, index)
    return result


def _apply_operation(doc: Any, op: Any, index: int) -> Any:
    if not isinstance(op, dict):
        raise PatchError(f"operation {index}: must be an object, got {type(op).__name__}")
    name = op.get("op")
    if not isinstance(name, str) or name not in _REQUIRED_MEMBERS:
        raise PatchError(f"operation {index}: unknown or missing op {name!r}")
    path = op.get("path")
    if not isinstance(path, str):
        raise PatchError(f"operation {index} ({name}): missing or non-string 'path'")
    for member in _REQUIRED_MEMBERS[name]:
        if member not in op:
            raise PatchError(f"operation {index} ({name} {path!r}): missing '{member}'")
    source = op.get("from")
    if name in ("move", "copy") and not isinstance(source, str):
        raise PatchError(f"operation {index} ({name} {path!r}): 'from' must be a string")
    try:
        if name == "add":
            return _add(doc, path, deep_copy(op["value"]))
        if name == "remove":
            doc, _ = _remove(doc, path)
            return doc
        if name == "replace":
            if path == "":
                return deep_copy(op["value"])
            doc, _ = _remove(doc, path)
            return _add(doc, path, deep_copy(op["value"]))
        if name == "test":
            if not json_equal(resolve_pointer(doc, path), op["value"]):
                raise PatchError(f"test failed: value at {path!r} is not {op['value']!r}")
            return doc
        assert isinstance(source, str)
        if name == "copy":
            return _add(doc, path, deep_copy(resolve_pointer(doc, source)))
        # move
        if path != source and path.startswith(source + "/"):
            raise PatchError(f"cannot move {source!r} into its own child {path!r}")
        if path == source:
            resolve_pointer(doc, source)
            return doc
        doc, value = _remove(doc, source)
        return _add(doc, path, value)
    except PatchError as err:
        raise PatchError(f"operation {index} ({name} {path!r}): {err}") from None


def _child(container: Any, token: str, pointer: str) -> Any:
    if isinstance(container, dict):
        if token not in container:
            raise PatchError(f"path {pointer!r}: no member {token!r}")
        return container[token]
    if isinstance(container, list):
        position = _array_index(container, token, pointer, allow_end=False)
        return container[position]
    raise PatchError(f"path {pointer!r}: cannot descend into {type(container).__name__} at {token!r}")


def _array_index(array: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    """Index ``token`` names in ``array``; ``allow_end`` admits ``len(array)`` and ``-`` (for add)."""
    if token == _APPEND:
        if allow_end:
            return len(array)
        raise PatchError(f"path {pointer!r}: '-' names no existing array element")
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(f"path {pointer!r}: {token!r} is not an array index")
    position = int(token)
    limit = len(array) if allow_end else len(array) - 1
    if position > limit:
        raise PatchError(f"path {pointer!r}: index {position} out of range for array of length {len(array)}")
    return position


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    """The container holding the last token of ``pointer``, and that token."""
    tokens = parse_pointer(pointer)
    parent = doc
    for token in tokens[:-1]:
        parent = _child(parent, token, pointer)
    return parent, tokens[-1]


def _add(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(parent, token, pointer, allow_end=True), value)
    else:
        raise PatchError(f"path {pointer!r}: parent is a {type(parent).__name__}, not an object or array")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    """Remove what ``pointer`` designates; returns the document and the removed value."""
    if pointer == "":
        raise PatchError("cannot remove the whole document")
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"path {pointer!r}: no member {token!r}")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(parent, token, pointer, allow_end=False))
    raise PatchError(f"path {pointer!r}: parent is a {type(parent).__name__}, not an object or array")
