"""Strategic merge patch, as k8s.io/apimachinery/pkg/util/strategicpatch applies it.

This is what ``kubectl patch --type strategic`` sends and what the API server does with it:

- maps merge recursively and ``null`` deletes a key;
- a list whose schema has ``patchStrategy: merge`` merges: elements of a list of objects are matched
  by the ``patchMergeKey``, primitive lists become the union of both; every other list is replaced;
- directives steer the merge: ``$patch: replace|delete|merge`` on a map or as a list element,
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``.

Order of merged lists follows apimachinery: elements named in the patch keep the patch's order,
the other elements keep the original's, and the two are interleaved by the original order — so an
element the original does not have comes before the original's elements, as ``kubectl patch``
shows. ``$setElementOrder`` overrides this order.

``$patch: delete`` on a map leaves ``{}`` in its place, as apimachinery does.

Values the original does not have are handled as apimachinery does and the API server then
stores them: a map carrying ``$patch`` in a new field is left out (removeDirectives); content
apimachinery copies as it is (``$patch: replace``, appended list elements, lists without a merge
strategy) keeps its data but loses its ``$`` keys and nulls, which the server's decoding drops. So
no directive ever reaches the result. Corners where apimachinery's outcome depends on Go details
are reproduced: its sort comparator (with an empty ``$setElementOrder``) and the original order
as Go's in-place ``append`` leaves it. ``$deleteFromPrimitiveList`` is applied after the field's
own patch list (apimachinery's order there is Go's random map order).

Deviations: ``$patch: merge`` is accepted as the no-op it names (apimachinery rejects it), merging
two empty lists is not an error, and an unknown ``$patch`` value is always an error.

``style="kustomize"`` switches to what ``kustomize build`` (kyaml's merge) does where it differs
from the API server: merged lists are the patch's elements in patch order followed by the
original's other elements, ``$patch: delete`` removes the map's field, and directives in new
values are applied to an empty value. Where kustomize leaks directives into its output
($retainKeys, $setElementOrder, $deleteFromPrimitiveList) this library applies them in both styles.
"""

from __future__ import annotations

from typing import Any, Literal

from libs.kpatch._json import deep_copy, json_equal
from libs.kpatch.errors import PatchError
from libs.kpatch.schema import FieldSchema

PATCH_DIRECTIVE = "$patch"
RETAIN_KEYS_DIRECTIVE = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST_PREFIX = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER_PREFIX = "$setElementOrder/"

_REPLACE = "replace"
_DELETE = "delete"
_MERGE = "merge"

_ORDER_ERROR = "the order of the patch list does not match its $setElementOrder list"

Style = Literal["apimachinery", "kustomize"]


def strategic_merge_patch(
    original: dict[str, Any],
    patch: dict[str, Any],
    schema: FieldSchema | None,
    *,
    style: Style = "apimachinery",
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` and return the result; the inputs are not modified.

    ``schema`` describes ``original`` (see :func:`libs.kpatch.schema_for`); with ``None`` every list
    is replaced, which makes this JSON merge patch plus the directives.

    ``style="apimachinery"`` (the default) gives what a real API server stores for a
    ``PATCH`` with ``application/strategic-merge-patch+json``. ``style="kustomize"`` follows
    ``kustomize build`` where it differs: merged lists hold the patch's elements first, in patch
    order, then the original's other elements; ``$patch: delete`` on a map removes the field
    instead of leaving ``{}``; directives in values the original lacks are applied to an empty value.
    """
    if not isinstance(original, dict):
        raise PatchError(
            f"strategic merge patch: the original must be an object, got {type(original).__name__}"
        )
    if not isinstance(patch, dict):
        raise PatchError(f"strategic merge patch: the patch must be an object, got {type(patch).__name__}")
    if style not in ("apimachinery", "kustomize"):
        raise PatchError(f"strategic merge patch: unknown style {style!r}")
    return _Merger(style).merge_map(deep_copy(original), deep_copy(patch), schema, "")


class _Merger:
    """One patch application; ``style`` picks between the API server's and kustomize's behaviour."""

    def __init__(self, style: Style) -> None:
        self.kustomize = style == "kustomize"

    def merge_map(
        self, original: dict[str, Any], patch: dict[str, Any], schema: FieldSchema | None, path: str
    ) -> dict[str, Any]:
        """Merge ``patch`` into ``original``; both are private copies and may be consumed."""
        if PATCH_DIRECTIVE in patch:
            directive = patch.pop(PATCH_DIRECTIVE)
            if directive == _REPLACE:
                return dict(self.verbatim(patch, schema, path))
            if directive == _DELETE:
                return {}
            _check_map_directive(directive, path)

        _apply_retain_keys(original, patch, path)
        self.apply_set_element_order(original, patch, schema, path)

        deletions = {
            key.removeprefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX): patch.pop(key)
            for key in [key for key in patch if key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)]
        }

        for key, value in patch.items():
            field_path = f"{path}.{key}"
            field_schema = _child(schema, key)
            if value is None or (
                self.kustomize and isinstance(value, dict) and value.get(PATCH_DIRECTIVE) == _DELETE
            ):
                original.pop(key, None)
                continue
            current = original.get(key)
            if isinstance(current, dict) and isinstance(value, dict):
                if _REPLACE in _strategies(field_schema):
                    original[key] = self.verbatim(value, field_schema, field_path)
                else:
                    original[key] = self.merge_map(current, value, field_schema, field_path)
            elif isinstance(current, list) and isinstance(value, list):
                original[key] = self.merge_list(current, value, field_schema, field_path)
            else:
                kept, keep = self.fresh(value, field_schema, field_path)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)

        # apimachinery applies these in Go's random map order relative to the field's own patch
        # list; they are applied last here, the outcome kubectl shows most often.
        for field, to_delete in deletions.items():
            if not isinstance(to_delete, list):
                raise PatchError(
                    f"{path}.{DELETE_FROM_PRIMITIVE_LIST_PREFIX}{field}: must be a list, got {type(to_delete).__name__}"
                )
            current = original.get(field)
            if isinstance(current, list):
                original[field] = _delete_from_primitive_list(current, to_delete, f"{path}.{field}")
        return original

    def fresh(self, value: Any, schema: FieldSchema | None, path: str) -> tuple[Any, bool]:
        """A patch value for a field the original lacks (or holds with another type).

        Returns the value to store and whether to store it at all. apimachinery (removeDirectives)
        drops every map that carries ``$patch``, at any depth, and nulls; kustomize applies the
        directives to an empty value.
        """
        if self.kustomize:
            return self.merge_into_empty(value, schema, path), True
        return _remove_directives(value, path)

    def verbatim(self, value: Any, schema: FieldSchema | None, path: str) -> Any:
        """A patch value apimachinery copies as it is: replaced content and appended list elements.

        The API server then decodes it into its type, which drops unknown fields: so the directive
        keys go, their maps' other content stays, and nulls mean "unset".
        """
        if self.kustomize:
            return self.merge_into_empty(value, schema, path)
        return _strip_directives(value)

    def merge_into_empty(self, value: Any, schema: FieldSchema | None, path: str) -> Any:
        if isinstance(value, dict):
            return self.merge_map({}, value, schema, path)
        if isinstance(value, list):
            return self.merge_list([], value, schema, path)
        return value

    def merge_list(
        self, original: list[Any], patch: list[Any], schema: FieldSchema | None, path: str
    ) -> list[Any]:
        """A list field: merged if its patch strategy says so, otherwise replaced by the patch."""
        if _MERGE in _strategies(schema):
            assert schema is not None
            return self.merge_slice(original, patch, schema, path)
        if not self.kustomize:
            stripped: list[Any] = _strip_directives(patch)
            return stripped
        items = _items(schema)
        replaced: list[Any] = []
        for index, element in enumerate(patch):
            if isinstance(element, dict) and PATCH_DIRECTIVE in element:
                # In a list that is replaced anyway, "replace" and "merge" change nothing and "delete"
                # has nothing to delete from: the directive goes, the rest of a "merge" element stays.
                directive = element[PATCH_DIRECTIVE]
                if directive not in (_REPLACE, _MERGE, _DELETE):
                    raise PatchError(f"{path}[{index}]: unknown $patch directive {directive!r} in a list")
                element = {key: value for key, value in element.items() if key != PATCH_DIRECTIVE}
                if directive != _MERGE or not element:
                    continue
            replaced.append(self.merge_into_empty(element, items, f"{path}[{index}]"))
        return replaced

    def merge_slice(self, original: list[Any], patch: list[Any], schema: FieldSchema, path: str) -> list[Any]:
        """A list with patch strategy ``merge``: union of primitives, or objects merged by their merge key."""
        if not original and not patch:
            return original
        merge_key = schema.merge_key
        if _element_kind(original, patch, path) == "scalar":
            merged = _deduplicate([*original, *patch])
            key = None
        else:
            if not merge_key:
                raise PatchError(f"{path}: cannot merge a list of objects without a patch merge key")
            original, patch = self.apply_list_directives(original, patch, merge_key, path)
            merged = self.merge_by_key(original, patch, merge_key, schema.items(), path)
            key = merge_key
        patch_items, server_only = _partition(merged, patch, key)
        if self.kustomize:
            return _sorted_by(patch_items, patch, key) + _sorted_by(server_only, original, key)
        return _normalize_order(patch_items, server_only, patch, original, key)

    def apply_list_directives(
        self, original: list[Any], patch: list[Any], merge_key: str, path: str
    ) -> tuple[list[Any], list[Any]]:
        """Handle ``{"$patch": ...}`` elements: delete matching originals, or replace the whole list.

        Returns the original and the patch to merge next; with ``$patch: replace`` the original is the
        patch's ordinary elements and nothing is left to merge.
        """
        ordinary: list[Any] = []
        replace = False
        for index, element in enumerate(patch):
            if PATCH_DIRECTIVE not in element:
                ordinary.append(element)
                continue
            directive = element[PATCH_DIRECTIVE]
            if directive == _DELETE:
                if merge_key not in element:
                    raise PatchError(f"{path}[{index}]: $patch: delete needs the merge key {merge_key!r}")
                original = [
                    kept
                    for kept in original
                    if not (isinstance(kept, dict) and json_equal(kept.get(merge_key), element[merge_key]))
                ]
            elif directive == _REPLACE:
                replace = True
            elif directive == _MERGE:
                if len(element) > 1:
                    element = {key: value for key, value in element.items() if key != PATCH_DIRECTIVE}
                    ordinary.append(element)
            else:
                raise PatchError(f"{path}[{index}]: unknown $patch directive {directive!r} in a list")
        if replace:
            return [self.verbatim(element, None, path) for element in ordinary], []
        return original, ordinary

    def merge_by_key(
        self, original: list[Any], patch: list[Any], merge_key: str, items: FieldSchema | None, path: str
    ) -> list[Any]:
        """Merge each patch element into the original element with the same merge key, or append it."""
        merged = list(original)
        for index, element in enumerate(patch):
            if merge_key not in element:
                raise PatchError(f"{path}[{index}]: element has no merge key {merge_key!r}")
            element_path = f"{path}[{merge_key}={element[merge_key]}]"
            position = _index_of(merged, element, merge_key)
            if position >= 0:
                merged[position] = self.merge_map(merged[position], element, items, element_path)
            else:
                merged.append(self.verbatim(element, items, element_path))
        return merged

    def apply_set_element_order(
        self, original: dict[str, Any], patch: dict[str, Any], schema: FieldSchema | None, path: str
    ) -> None:
        """``$setElementOrder/<field>``: merge that field's patch list, then order it as the directive says.

        Elements named in the directive come in its order; original elements it does not name keep
        their place relative to the original. The field's patch list is consumed here.
        """
        for key in [key for key in patch if key.startswith(SET_ELEMENT_ORDER_PREFIX)]:
            order = patch.pop(key)
            field = key.removeprefix(SET_ELEMENT_ORDER_PREFIX)
            field_path = f"{path}.{field}"
            if not isinstance(order, list):
                raise PatchError(f"{path}.{key}: must be a list, got {type(order).__name__}")
            if field in patch and patch[field] is None:
                continue  # the field is being deleted; there is nothing to order
            current = original.get(field)
            if current is not None and not isinstance(current, list):
                raise PatchError(
                    f"{field_path}: $setElementOrder applies to a list, found {type(current).__name__}"
                )
            incoming = patch.pop(field, None)
            if incoming is not None and not isinstance(incoming, list):
                raise PatchError(
                    f"{field_path}: $setElementOrder applies to a list, patch has {type(incoming).__name__}"
                )
            field_schema = _child(schema, field)
            merge_key = field_schema.merge_key if field_schema is not None else None
            if incoming and order:
                _check_order(incoming, order, merge_key, field_path)
            if current is None and incoming is None:
                continue
            server_order = list(current or [])
            if incoming is None:
                merged = list(server_order)
            else:
                if merge_key and _MERGE in _strategies(field_schema):
                    server_order = _server_order_after_merge(server_order, incoming, merge_key)
                merged = self.merge_list(current or [], incoming, field_schema, field_path)
            key_for_order = merge_key if any(isinstance(element, dict) for element in merged) else None
            named, others = _partition(merged, order, key_for_order)
            original[field] = _normalize_order(named, others, order, server_order, key_for_order)


def _remove_directives(value: Any, path: str) -> tuple[Any, bool]:
    """apimachinery's removeDirectives after discardNullValuesFromPatch, plus the API server's decoding.

    A map carrying ``$patch`` is dropped (the second item says whether to keep the value at all),
    nulls in maps are dropped, other ``$`` keys do not survive decoding.
    """
    if isinstance(value, dict):
        if PATCH_DIRECTIVE in value:
            _check_map_directive(value[PATCH_DIRECTIVE], path)
            return None, False
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or key.startswith("$"):
                continue
            kept, keep = _remove_directives(item, f"{path}.{key}")
            if keep:
                cleaned[key] = kept
        return cleaned, True
    if isinstance(value, list):
        elements = [_remove_directives(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return [kept for kept, keep in elements if keep], True
    return value, True


def _strip_directives(value: Any) -> Any:
    """A value copied verbatim, as the API server stores it: no ``$`` keys, no null map values,
    and no list elements that held nothing but directives."""
    if isinstance(value, dict):
        return {
            key: _strip_directives(item)
            for key, item in value.items()
            if item is not None and not key.startswith("$")
        }
    if isinstance(value, list):
        return [
            _strip_directives(item)
            for item in value
            if not (isinstance(item, dict) and item and all(key.startswith("$") for key in item))
        ]
    return value


def _check_map_directive(directive: Any, path: str) -> None:
    if directive not in (_REPLACE, _DELETE, _MERGE):
        raise PatchError(f"{path or '.'}: unknown $patch directive {directive!r} in a map")


def _child(schema: FieldSchema | None, name: str) -> FieldSchema | None:
    return None if schema is None else schema.child(name)


def _items(schema: FieldSchema | None) -> FieldSchema | None:
    return None if schema is None else schema.items()


def _strategies(schema: FieldSchema | None) -> frozenset[str]:
    return frozenset() if schema is None else schema.strategies


def _element_kind(original: list[Any], patch: list[Any], path: str) -> str:
    """``map`` if the elements are objects, ``scalar`` if they are primitives; mixed lists are errors."""
    kinds = set()
    for element in (*original, *patch):
        if isinstance(element, list):
            raise PatchError(f"{path}: cannot merge a list of lists")
        kinds.add("map" if isinstance(element, dict) else "scalar")
    if len(kinds) > 1:
        raise PatchError(f"{path}: cannot merge a list that mixes objects and primitives")
    return kinds.pop() if kinds else "scalar"


def _delete_from_primitive_list(original: list[Any], to_delete: list[Any], path: str) -> list[Any]:
    if any(isinstance(element, dict | list) for element in (*original, *to_delete)):
        raise PatchError(f"{path}: $deleteFromPrimitiveList applies to lists of primitives only")
    return [element for element in original if not any(json_equal(element, gone) for gone in to_delete)]


def _deduplicate(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if not any(json_equal(value, seen) for seen in unique):
            unique.append(value)
    return unique


def _index_of(values: list[Any], wanted: Any, merge_key: str | None) -> int:
    """Position of ``wanted`` in ``values``: by merge key for objects, by value for primitives; -1 if absent."""
    for position, value in enumerate(values):
        if merge_key is not None and isinstance(value, dict) and isinstance(wanted, dict):
            if merge_key in value and json_equal(value[merge_key], wanted.get(merge_key)):
                return position
        elif json_equal(value, wanted):
            return position
    return -1


def _partition(
    merged: list[Any], present_in: list[Any], merge_key: str | None
) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into the elements named in ``present_in`` and the others."""
    named: list[Any] = []
    others: list[Any] = []
    for element in merged:
        (named if _index_of(present_in, element, merge_key) >= 0 else others).append(element)
    return named, others


def _sorted_by(values: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    """``values`` sorted by their position in ``order``, exactly as apimachinery sorts them.

    apimachinery's comparison says "less" whenever either element is missing from ``order``, and
    Go's stable sort runs an insertion sort on short lists; an element missing from ``order`` thus
    ends up in a place that depends on where it started. That happens only with an empty
    ``$setElementOrder`` list, and the same insertion sort reproduces it. For elements that are all
    in ``order`` this is an ordinary stable sort.
    """
    ranked = [(_index_of(order, value, merge_key), value) for value in values]
    for start in range(1, len(ranked)):
        at = start
        while at > 0 and _go_less(ranked[at][0], ranked[at - 1][0]):
            ranked[at - 1], ranked[at] = ranked[at], ranked[at - 1]
            at -= 1
    return [value for _, value in ranked]


def _go_less(left: int, right: int) -> bool:
    """apimachinery's ordering of two positions (-1: absent) in normalizeSliceOrder."""
    if left >= 0 and right >= 0:
        return left < right
    return True


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str | None,
) -> list[Any]:
    """Interleave patch elements (in patch order) with server-only elements (in original order).

    A server-only element goes before a patch element only when both are in the original and it
    came first there; so new elements lead, and known ones keep their original neighbours.
    """
    right = _sorted_by(patch_items, patch_order, merge_key)
    left = _sorted_by(server_only, server_order, merge_key)
    result: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            result.append(right[j])
            j += 1
        elif j >= len(right):
            result.append(left[i])
            i += 1
        else:
            left_at = _index_of(server_order, left[i], merge_key)
            right_at = _index_of(server_order, right[j], merge_key)
            if 0 <= left_at < right_at:
                result.append(left[i])
                i += 1
            else:
                result.append(right[j])
                j += 1
    return result


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any], path: str) -> None:
    """``$retainKeys``: drop every original field the list does not name (used with ``retainKeys``)."""
    if RETAIN_KEYS_DIRECTIVE not in patch:
        return
    retain = patch.pop(RETAIN_KEYS_DIRECTIVE)
    if not isinstance(retain, list):
        raise PatchError(f"{path}.{RETAIN_KEYS_DIRECTIVE}: must be a list, got {type(retain).__name__}")
    kept = {str(key) for key in retain}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST_PREFIX, SET_ELEMENT_ORDER_PREFIX)):
            continue
        if key not in kept:
            raise PatchError(f"{path}.{RETAIN_KEYS_DIRECTIVE}: patch sets {key!r} but does not retain it")
    for key in [key for key in original if key not in kept]:
        del original[key]


def _server_order_after_merge(original: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    """The original list as apimachinery's ``$setElementOrder`` step sees it after merging ``patch``.

    apimachinery deletes ``$patch: delete`` elements and appends new ones with Go's ``append`` on
    the original slice, which writes into the slice's own array while it has room; the ordering
    step then reads the original through its old length. So deleted elements' slots come to hold
    the elements after them and, in the freed room at the end, the first new elements. (The API
    server builds the original with capacity equal to its length, which is what is modelled here.)
    A sidecar that the patch does not name therefore keeps its lead over a container that replaces
    a deleted one, as on a real API server.
    """
    if any(isinstance(element, dict) and element.get(PATCH_DIRECTIVE) == _REPLACE for element in patch):
        return original  # the list is replaced by a new slice; nothing is written through
    backing = list(original)
    length = len(backing)
    for element in patch:
        if isinstance(element, dict) and element.get(PATCH_DIRECTIVE) == _DELETE and merge_key in element:
            while (at := _index_of(backing[:length], element, merge_key)) >= 0:
                backing[at : length - 1] = backing[at + 1 : length]
                length -= 1
    for element in patch:
        if not isinstance(element, dict) or element.get(PATCH_DIRECTIVE) in (_DELETE, _REPLACE):
            continue
        if _index_of(backing[:length], element, merge_key) >= 0:
            continue  # merged in place: same merge key, same position
        if length == len(backing):
            break  # append reallocates: later writes no longer reach the original's array
        backing[length] = element
        length += 1
    return backing


def _check_order(incoming: list[Any], order: list[Any], merge_key: str | None, path: str) -> None:
    """Every ordinary patch element must appear in ``$setElementOrder``, in the same relative order."""
    elements = [
        element for element in incoming if not (isinstance(element, dict) and PATCH_DIRECTIVE in element)
    ]
    position = 0
    for element in elements:
        while position < len(order) and _index_of([order[position]], element, merge_key) < 0:
            position += 1
        if position >= len(order):
            raise PatchError(f"{path}: {_ORDER_ERROR}")
        position += 1
