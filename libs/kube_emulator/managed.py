"""Field ownership for server-side apply: field sets, `metadata.managedFields` and apply merges.

A field set is a set of paths; a path is a tuple of FieldsV1 elements (`f:spec`, `k:{"name":"a"}`,
`v:"x"`). Leaves and list items are members; a list item or granular map that is a member and has
members below it is encoded with `.` like the real server does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from libs import kpatch

from . import errors as E

if TYPE_CHECKING:
    from .kinds import ResourceType

JSON = dict[str, Any]
Path = tuple[str, ...]
FieldSet = set[Path]

_MISSING = object()
_UNMANAGED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
}
_KNOWN_MAPS = {
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "matchLabels",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "parameters",
}


# -- schema views --------------------------------------------------------------------------------
class Node:
    """What SSA needs to know about a field: its children, list type and list-map keys."""

    def child(self, name: str) -> Node | None:
        return None

    def items(self) -> Node | None:
        return None

    @property
    def list_type(self) -> str | None:
        return None

    @property
    def map_keys(self) -> list[str]:
        return []

    @property
    def is_map(self) -> bool:
        return False

    @property
    def atomic(self) -> bool:
        return False


class CrdNode(Node):
    """A node of a CRD's structural openAPIV3Schema."""

    def __init__(self, schema: JSON, meta: Node | None = None) -> None:
        self.schema = schema
        self.meta = meta

    def child(self, name: str) -> Node | None:
        if self.meta is not None and name == "metadata":
            return self.meta
        props = self.schema.get("properties") or {}
        if name in props:
            return CrdNode(props[name])
        additional = self.schema.get("additionalProperties")
        if isinstance(additional, dict):
            return CrdNode(additional)
        return None

    def items(self) -> Node | None:
        items = self.schema.get("items")
        return CrdNode(items) if isinstance(items, dict) else None

    @property
    def list_type(self) -> str | None:
        value = self.schema.get("x-kubernetes-list-type")
        return str(value) if value else None

    @property
    def map_keys(self) -> list[str]:
        return list(self.schema.get("x-kubernetes-list-map-keys") or [])

    @property
    def is_map(self) -> bool:
        return isinstance(self.schema.get("additionalProperties"), dict) and not self.schema.get("properties")

    @property
    def atomic(self) -> bool:
        return self.schema.get("x-kubernetes-map-type") == "atomic"


class KpatchNode(Node):
    """Adapter over `libs.kpatch`'s FieldSchema (built-in kinds and ObjectMeta)."""

    def __init__(self, schema: kpatch.FieldSchema, name: str = "") -> None:
        self.schema = schema
        self.name = name

    def child(self, name: str) -> Node | None:
        sub = self.schema.child(name)
        return KpatchNode(sub, name) if sub is not None else None

    def items(self) -> Node | None:
        sub = self.schema.items()
        return KpatchNode(sub, self.name) if sub is not None else None

    @property
    def list_type(self) -> str | None:
        return self.schema.list_type

    @property
    def map_keys(self) -> list[str]:
        return list(self.schema.map_keys)

    @property
    def is_map(self) -> bool:
        return bool(self.schema.type == "map")

    @property
    def atomic(self) -> bool:
        return self.schema.map_type == "atomic"


def schema_root(rt: ResourceType, version: str) -> Node:
    meta: Node = KpatchNode(kpatch.object_meta_schema(), "metadata")
    if rt.is_custom:
        doc = rt.schemas.get(version) or rt.schemas.get(rt.storage_version)
        return CrdNode(doc or {"x-kubernetes-preserve-unknown-fields": True}, meta)
    found = kpatch.schema_for(rt.api_version(version), rt.kind)
    if found is None:
        return _MetaOnly(meta)
    return _WithMeta(KpatchNode(found), meta)


class _MetaOnly(Node):
    def __init__(self, meta: Node) -> None:
        self.meta = meta

    def child(self, name: str) -> Node | None:
        return self.meta if name == "metadata" else None


class _WithMeta(Node):
    def __init__(self, inner: Node, meta: Node) -> None:
        self.inner = inner
        self.meta = meta

    def child(self, name: str) -> Node | None:
        return self.meta if name == "metadata" else self.inner.child(name)


def _child(node: Node | None, name: str) -> Node | None:
    return node.child(name) if node is not None else None


def _items(node: Node | None) -> Node | None:
    return node.items() if node is not None else None


# -- field sets ----------------------------------------------------------------------------------
# list-map key fields with a schema default (structured-merge-diff fills these in when absent)
_KEY_DEFAULTS = {"protocol": "TCP"}


def _key_element(item: Any, keys: list[str]) -> str | None:
    if not isinstance(item, dict) or not keys:
        return None
    values: JSON = {}
    for key in keys:
        if key in item:
            values[key] = item[key]
        elif key in _KEY_DEFAULTS:
            values[key] = _KEY_DEFAULTS[key]
        else:
            return None
    return "k:" + json.dumps(values, separators=(",", ":"), sort_keys=True)


def _value_element(item: Any) -> str:
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def field_set(obj: JSON, root: Node | None, part: str) -> FieldSet:
    """Fields of an object (`part` is "main" — all but status for split kinds — "all" or "status")."""
    out: FieldSet = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if part == "main" and key == "status":
            continue
        if part == "status" and key != "status":
            continue
        if key == "metadata":
            if isinstance(value, dict):
                meta_node = _child(root, "metadata")
                for mk, mv in value.items():
                    if mk not in _UNMANAGED_META:
                        _collect(mv, _child(meta_node, mk), ("f:metadata", f"f:{mk}"), out, mk)
            continue
        _collect(value, _child(root, key), (f"f:{key}",), out, key)
    return out


def _collect(value: Any, node: Node | None, path: Path, out: FieldSet, name: str) -> None:
    if isinstance(value, dict) and not (node is not None and node.atomic):
        if not value:
            out.add(path)
            return
        if (node is not None and node.is_map) or (node is None and name in _KNOWN_MAPS):
            out.add(path)
        for key, sub in value.items():
            _collect(sub, _child(node, key), (*path, f"f:{key}"), out, key)
        return
    if isinstance(value, list) and node is not None and value:
        if node.list_type == "set":
            out.add(path)
            for item in value:
                out.add((*path, _value_element(item)))
            return
        keys = node.map_keys if node.list_type in ("map", None) else []
        if keys and all(_key_element(item, keys) is not None for item in value):
            item_node = node.items()
            for item in value:
                element = _key_element(item, keys)
                assert element is not None
                item_path = (*path, element)
                out.add(item_path)
                for key, sub in item.items():
                    _collect(sub, _child(item_node, key), (*item_path, f"f:{key}"), out, key)
            return
    out.add(path)


def _item_matches(item: Any, want: JSON) -> bool:
    return isinstance(item, dict) and all(item.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in want.items())


def get_at(obj: Any, path: Path) -> Any:
    cur = obj
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _MISSING
            cur = cur[rest]
        elif kind == "k":
            if not isinstance(cur, list):
                return _MISSING
            want = json.loads(rest)
            cur = next((i for i in cur if _item_matches(i, want)), _MISSING)
            if cur is _MISSING:
                return _MISSING
        elif kind == "v":
            if not isinstance(cur, list):
                return _MISSING
            want_value = json.loads(rest)
            return want_value if want_value in cur else _MISSING
        else:
            return _MISSING
    return cur


def _remove_at(obj: Any, path: Path) -> None:
    parent = get_at(obj, path[:-1])
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(rest)
        parent[:] = [i for i in parent if not _item_matches(i, want)]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def path_string(path: Path) -> str:
    """The structured-merge-diff rendering: `.spec.containers[name="app"].image`."""
    out = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
    return out


def encode(fields: Iterable[Path]) -> JSON:
    tree: JSON = {}
    members: set[Path] = set(fields)
    for path in sorted(members):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return _sorted_tree(tree)


def _sorted_tree(tree: JSON) -> JSON:
    return {k: _sorted_tree(tree[k]) for k in sorted(tree)}


def decode(tree: JSON, prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for key, sub in tree.items():
        if key == ".":
            out.add(prefix)
            continue
        path = (*prefix, key)
        if not sub:
            out.add(path)
        else:
            out |= decode(sub, path)
    return out


def same_sets(a: list[JSON] | None, b: list[JSON] | None) -> bool:
    def norm(entries: list[JSON] | None) -> list[tuple[str, str, str, str]]:
        return sorted(
            (
                e.get("manager", ""),
                e.get("operation", ""),
                e.get("subresource", ""),
                json.dumps(e.get("fieldsV1"), sort_keys=True),
            )
            for e in entries or []
        )

    return norm(a) == norm(b)


# -- managed fields entries ----------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Entries:
    def __init__(self, entries: list[JSON]) -> None:
        self.entries = [copy.deepcopy(e) for e in entries]
        self.sets = [decode(e.get("fieldsV1") or {}) for e in self.entries]
        self.originals = [set(fields) for fields in self.sets]

    def find(self, manager: str, operation: str, subresource: str | None) -> int | None:
        for i, e in enumerate(self.entries):
            if (
                e.get("manager") == manager
                and e.get("operation") == operation
                and (e.get("subresource") or None) == subresource
            ):
                return i
        return None

    def put(
        self, manager: str, operation: str, subresource: str | None, api_version: str, fields: FieldSet
    ) -> None:
        index = self.find(manager, operation, subresource)
        if (
            index is not None
            and self.sets[index] == fields
            and self.entries[index].get("apiVersion") == api_version
        ):
            return
        entry: JSON = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": _now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }
        if subresource:
            entry["subresource"] = subresource
        if index is None:
            self.entries.append(entry)
            self.sets.append(fields)
            self.originals.append(set())
        else:
            self.entries[index] = entry
            self.sets[index] = fields

    def finish(self, obj: JSON) -> list[JSON]:
        out: list[JSON] = []
        for entry, fields, original in zip(self.entries, self.sets, self.originals, strict=True):
            kept = {p for p in fields if get_at(obj, p) is not _MISSING}
            if not kept:
                continue
            if kept != original:
                entry["time"] = _now()
            entry["fieldsV1"] = encode(kept)
            out.append(entry)
        return out


def prune_entries(entries: list[JSON], obj: JSON) -> list[JSON]:
    """Drop owned paths that no longer exist (pruned or defaulted away by admission)."""
    return _Entries(entries).finish(obj)


def _part(rt: ResourceType, subresource: str | None) -> str:
    if subresource == "status":
        return "status"
    return "main" if rt.has_status else "all"


def record_update(
    rt: ResourceType,
    version: str,
    old: JSON | None,
    new: JSON,
    entries: list[JSON],
    manager: str,
    operation: str,
    subresource: str | None,
) -> list[JSON]:
    """Ownership after a non-apply write: the writer takes every field it changed."""
    root = schema_root(rt, version)
    part = _part(rt, subresource)
    new_fields = field_set(new, root, part)
    if old is None:
        changed = new_fields
    else:
        changed = set()
        containers = {path[:n] for path in new_fields for n in range(1, len(path))}
        for path in new_fields:
            before, after = get_at(old, path), get_at(new, path)
            container = path in containers or _is_container_member(after)
            if before is _MISSING or (not container and before != after):
                changed.add(path)
    book = _Entries(entries)
    for i in range(len(book.sets)):
        book.sets[i] = book.sets[i] - changed
    index = book.find(manager, operation, subresource)
    previous = book.sets[index] if index is not None else set()
    if changed or index is not None:
        book.put(manager, operation, subresource, rt.api_version(version), previous | changed)
    return book.finish(new)


def apply(
    rt: ResourceType,
    version: str,
    live: JSON,
    applied: JSON,
    entries: list[JSON],
    manager: str,
    force: bool,
    subresource: str | None,
) -> tuple[JSON, list[JSON]]:
    """Server-side apply: merge `applied` into `live`; returns (merged object, managedFields)."""
    root = schema_root(rt, version)
    part = _part(rt, subresource)
    applied = copy.deepcopy(applied)
    if part == "main":
        applied.pop("status", None)
    elif part == "status":
        applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
        applied["metadata"] = {
            k: v for k, v in (applied.get("metadata") or {}).items() if k in ("name", "namespace")
        }
    new_fields = field_set(applied, root, part)
    book = _Entries(entries)
    mine = book.find(manager, "Apply", subresource)
    containers = {path[:n] for path in new_fields for n in range(1, len(path))}
    conflicts: list[tuple[int, Path]] = []
    for i, fields in enumerate(book.sets):
        if i == mine:
            continue
        for path in sorted(fields & new_fields):
            ours = get_at(applied, path)
            if path in containers or _is_container_member(ours):
                continue
            if get_at(live, path) != ours:
                conflicts.append((i, path))
    if conflicts and not force:
        raise _conflict_error(book, conflicts)
    for i, path in conflicts:
        book.sets[i].discard(path)
    merged = copy.deepcopy(live)
    previous = book.sets[mine] if mine is not None else set()
    others: FieldSet = set()
    for i, fields in enumerate(book.sets):
        if i != mine:
            others |= fields
    removed: list[Path] = []
    for path in sorted(previous - new_fields, key=len):
        if any(path[: len(r)] == r for r in removed):
            continue
        if path in others or any(o[: len(path)] == path for o in others):
            continue
        if any(n[: len(path)] == path for n in new_fields):
            continue
        removed.append(path)
    for path in removed:
        _remove_at(merged, path)
    _merge(merged, applied, root, True)
    book.put(manager, "Apply", subresource, rt.api_version(version), new_fields)
    return merged, book.finish(merged)


def _is_container_member(value: Any) -> bool:
    return isinstance(value, dict)


def _merge(dst: JSON, src: JSON, node: Node | None, root: bool = False) -> None:
    for key, value in src.items():
        if root and key in ("apiVersion", "kind"):
            dst[key] = value
            continue
        child = _child(node, key)
        current = dst.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and not (child is not None and child.atomic):
            _merge(current, value, child)
        elif isinstance(value, list) and isinstance(current, list) and child is not None:
            _merge_list(current, value, child)
        else:
            dst[key] = copy.deepcopy(value)


def _merge_list(dst: list[Any], src: list[Any], node: Node) -> None:
    if node.list_type == "set":
        for item in src:
            if item not in dst:
                dst.append(copy.deepcopy(item))
        return
    keys = node.map_keys if node.list_type in ("map", None) else []
    if not keys or not all(_key_element(i, keys) is not None for i in src + dst):
        dst[:] = copy.deepcopy(src)
        return
    item_node = node.items()
    for item in src:
        element = _key_element(item, keys)
        existing = next((d for d in dst if _key_element(d, keys) == element), None)
        if existing is None:
            dst.append(copy.deepcopy(item))
        else:
            _merge(existing, item, item_node)


def _describe(entry: JSON) -> str:
    name = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        name += f" with subresource {json.dumps(entry['subresource'])}"
    if entry.get("operation") == "Update":
        return f"{name} using {entry.get('apiVersion', '')}"
    return name


def _conflict_error(book: _Entries, conflicts: list[tuple[int, Path]]) -> E.ApiError:
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {_describe(book.entries[i])}",
            "field": path_string(path),
        }
        for i, path in conflicts
    ]
    if len(conflicts) == 1:
        i, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_describe(book.entries[i])}: {path_string(path)}"
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for i, path in conflicts:
            by_manager.setdefault(_describe(book.entries[i]), []).append(path_string(path))
        lines: list[str] = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {p}" for p in by_manager[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    err = E.ApiError(409, "Conflict", message, causes=causes)
    return err
