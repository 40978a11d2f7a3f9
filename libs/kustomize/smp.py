"""Strategic merge as ``kustomize build`` applies it, on top of :mod:`libs.kpatch`.

kpatch merges lists of objects by their ``patchMergeKey``. kustomize (kyaml) identifies the
elements of some lists by several fields, the ``x-kubernetes-list-map-keys`` of the schema:
container ``ports`` by ``containerPort`` *and* ``protocol``, so ``53/UDP`` added next to
``53/TCP`` is a new element. Before handing a patch to kpatch, such lists are merged here with
kyaml's identity (new elements first, in patch order, then the original's elements in their
order, merged with their patch element) and passed
on as a ``$patch: replace`` list, then put back in place after kpatch (which would regroup it
by the single merge key); everything else is kpatch's. Behaviour checked against
``kubectl kustomize`` (kustomize v5.5.0), including its loss of a patch element whose key
fields are set on one side only.
"""

from __future__ import annotations

from typing import Any

from libs.kpatch import FieldSchema, strategic_merge_patch

_DIRECTIVE = "$patch"


# A step from an object to a field: a key, or (merge key, value) selecting a list element.
Step = str | tuple[str, Any]
Fix = tuple[tuple[Step, ...], list[Any]]


def apply_strategic_merge(
    original: dict[str, Any], patch: dict[str, Any], schema: FieldSchema
) -> dict[str, Any]:
    """The patched object; neither input is modified."""
    fixes: list[Fix] = []
    prepared = _prepare(original, patch, schema, (), fixes)
    result = strategic_merge_patch(original, prepared, schema, style="kustomize")
    for path, merged in fixes:
        _set_at(result, path, merged)
    return result


def _set_at(node: Any, path: tuple[Step, ...], value: list[Any]) -> None:
    """Put a pre-merged list in place (kpatch would regroup it by the single merge key)."""
    for step in path[:-1]:
        if isinstance(step, tuple):
            key, wanted = step
            node = next((e for e in node if isinstance(e, dict) and e.get(key) == wanted), None)
        else:
            node = node.get(step) if isinstance(node, dict) else None
        if node is None:
            return
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value


def _prepare(
    original: Any, patch: Any, schema: FieldSchema | None, path: tuple[Step, ...], fixes: list[Fix]
) -> Any:
    """``patch`` with multi-key lists pre-merged; the same object when nothing changes."""
    if schema is None or not isinstance(patch, dict) or not isinstance(original, dict):
        return patch
    if patch.get(_DIRECTIVE) in ("replace", "delete"):
        return patch
    changed: dict[str, Any] | None = None
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = schema.child(key)
        current = original.get(key)
        if child is None or current is None:
            continue
        if isinstance(value, dict):
            new = _prepare(current, value, child, (*path, key), fixes)
        elif isinstance(value, list) and isinstance(current, list) and child.type == "list":
            new = _prepare_list(current, value, child, (*path, key), fixes)
        else:
            continue
        if new is not value:
            changed = dict(patch) if changed is None else changed
            changed[key] = new
    return patch if changed is None else changed


def _prepare_list(
    original: list[Any], patch: list[Any], schema: FieldSchema, path: tuple[Step, ...], fixes: list[Fix]
) -> list[Any]:
    merge_key = schema.merge_key
    items = schema.items()
    if merge_key is None or items is None:
        return patch
    if not all(isinstance(e, dict) for e in (*original, *patch)):
        return patch
    if any(_DIRECTIVE in e for e in patch):
        return patch
    keys = schema.map_keys
    secondary = [k for k in keys if k != merge_key]
    if secondary and any(k in e for e in (*original, *patch) for k in secondary):
        # kyaml uses all keys only when some element sets one besides the merge key
        merged = _merge_multi_key(original, patch, items, keys)
        fixes.append((path, merged))
        return [{_DIRECTIVE: "replace"}, *merged]
    # single merge key: look for multi-key lists further down in matching elements
    result: list[Any] | None = None
    for index, element in enumerate(patch):
        match = next((o for o in original if o.get(merge_key) == element.get(merge_key)), None)
        if match is None:
            continue
        new = _prepare(match, element, items, (*path, (merge_key, element.get(merge_key))), fixes)
        if new is not element:
            result = list(patch) if result is None else result
            result[index] = new
    return patch if result is None else result


def _merge_multi_key(
    original: list[dict[str, Any]], patch: list[dict[str, Any]], items: FieldSchema, keys: tuple[str, ...]
) -> list[Any]:
    def identity(element: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(element.get(k) for k in keys)

    def loosely_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return all(k not in a or k not in b or a[k] == b[k] for k in keys)

    patch_by_identity = {identity(p): p for p in patch}
    merged: list[Any] = []
    originals = {identity(o) for o in original}
    for element in patch:
        if identity(element) in originals:
            continue
        if not any(loosely_equal(element, o) for o in original):
            merged.append(element)
        # else: kyaml finds the original when a key (say protocol) is set on one side only,
        # then fails to store the merge: the patch element is lost and the original kept
    for element in original:
        match = patch_by_identity.get(identity(element))
        merged.append(element if match is None else apply_strategic_merge(element, match, items))
    return merged
