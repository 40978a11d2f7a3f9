"""``replacements:`` — copy a field of one resource into fields of others (api/filters/replacement).

Field paths are dot-separated; ``[key=value]`` selects list elements, ``*`` every field or
element, and brackets protect dots inside a field name. A source is selected by
group/version/kind/name/namespace among the current and previous ids of every resource; targets
by ``select`` (plus label/annotation selectors) minus ``reject``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from libs.kustomize.errors import KustomizeError
from libs.kustomize.resource import Gvk, ResId, Resource, as_text, parse_label_selector, selector_matches
from libs.kustomize.yamlio import resolve_plain_v3

DEFAULT_FIELD_PATH = "metadata.name"


class UntypedText(str):
    """The text of a scalar a replacement created: kyaml gives such a node no tag, so its type
    is decided from the text when the object is printed (``"1"`` prints as ``1``), while later
    replacements and metadata.annotations treat it as text. See :func:`resolve_untyped`."""


def untyped_to_strings(node: Any) -> Any:
    """``node`` with every :class:`UntypedText` made a plain string (kyaml's merge tags them !!str)."""
    if isinstance(node, UntypedText):
        return str(node)
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = untyped_to_strings(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            node[index] = untyped_to_strings(value)
    return node


def resolve_untyped(node: Any) -> Any:
    """``node`` with every :class:`UntypedText` replaced by the value its text denotes."""
    if isinstance(node, UntypedText):
        return resolve_plain_v3(str(node))
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = resolve_untyped(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            node[index] = resolve_untyped(value)
    return node


@dataclass(frozen=True, slots=True)
class IdSelector:
    gvk: Gvk
    name: str
    namespace: str

    @classmethod
    def parse(cls, raw: Any, where: str) -> IdSelector:
        if not isinstance(raw, dict):
            raise KustomizeError(f"{where}: must be a mapping")
        return cls(
            Gvk(as_text(raw.get("group")), as_text(raw.get("version")), as_text(raw.get("kind"))),
            as_text(raw.get("name")),
            as_text(raw.get("namespace")),
        )

    def selects(self, rid: ResId) -> bool:
        """ResId.IsSelectedBy."""
        if self.name and self.name != rid.name:
            return False
        if (
            self.namespace
            and ResId(rid.gvk, "", self.namespace).effective_namespace != rid.effective_namespace
        ):
            return False
        return rid.gvk.is_selected(self.gvk)

    def __str__(self) -> str:
        return str(ResId(self.gvk, self.name, self.namespace))


def split_field_path(path: str) -> list[str]:
    """kyaml's SmarterPathSplitter: split on dots outside brackets."""
    parts: list[str] = []
    current = ""
    depth = 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _options(raw: Any, where: str) -> tuple[str, int, bool]:
    if raw is None:
        return "", 0, False
    if not isinstance(raw, dict):
        raise KustomizeError(f"{where}: options must be a mapping")
    index = raw.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool):
        raise KustomizeError(f"{where}: options.index must be an integer")
    return as_text(raw.get("delimiter")), index, bool(raw.get("create", False))


def apply_replacements(resources: list[Resource], replacements: list[dict[str, Any]], where: str) -> None:
    for number, replacement in enumerate(replacements):
        here = f"{where}[{number}]"
        source_raw, targets = replacement.get("source"), replacement.get("targets")
        if source_raw is None or not targets:
            raise KustomizeError(f"{here}: replacements must specify a source and at least one target")
        value = _source_value(resources, source_raw, here)
        if not isinstance(targets, list):
            raise KustomizeError(f"{here}: targets must be a list")
        for target in targets:
            _apply_target(resources, value, target, here)


def _source_value(resources: list[Resource], raw: Any, where: str) -> Any:
    selector = IdSelector.parse(raw, f"{where}: source")
    matches = [r for r in resources if any(selector.selects(i) for i in r.all_ids())]
    if len(matches) > 1:
        raise KustomizeError(f"{where}: multiple matches for selector {selector}")
    if not matches:
        raise KustomizeError(f"{where}: nothing selected by {selector}")
    field_path = as_text(raw.get("fieldPath")) or DEFAULT_FIELD_PATH
    found = _lookup(matches[0].obj, split_field_path(field_path))
    if found in (None, "", {}, []):
        raise KustomizeError(
            f"{where}: fieldPath `{field_path}` is missing for replacement source {selector}"
        )
    delimiter, index, _ = _options(raw.get("options"), f"{where}: source")
    if not delimiter:
        return found
    if isinstance(found, dict | list):
        raise KustomizeError(f"{where}: delimiter option can only be used with scalar nodes")
    pieces = _scalar_text(found).split(delimiter)
    if not 0 <= index < len(pieces):
        raise KustomizeError(
            f"{where}: options.index {index} is out of bounds for value {_scalar_text(found)}"
        )
    return pieces[index]


def _apply_target(resources: list[Resource], value: Any, raw: Any, where: str) -> None:
    if not isinstance(raw, dict) or raw.get("select") is None:
        raise KustomizeError(f"{where}: target must specify resources to select")
    select_raw = raw["select"]
    selector = IdSelector.parse(select_raw, f"{where}: select")
    rejects = [IdSelector.parse(r, f"{where}: reject") for r in raw.get("reject") or []]
    labels = as_text(select_raw.get("labelSelector"))
    annotations = as_text(select_raw.get("annotationSelector"))
    label_req = parse_label_selector(labels, where) if labels else None
    annotation_req = parse_label_selector(annotations, where) if annotations else None
    paths = [as_text(p) for p in raw.get("fieldPaths") or []] or [DEFAULT_FIELD_PATH]
    delimiter, index, create = _options(raw.get("options"), f"{where}: target")
    for r in resources:
        if label_req is not None and not selector_matches(label_req, r.labels()):
            continue
        if annotation_req is not None and not selector_matches(annotation_req, r.annotations()):
            continue
        ids = r.all_ids()
        if not any(selector.selects(i) for i in ids) or any(rej.selects(i) for rej in rejects for i in ids):
            continue  # any id, current or previous, selects; any id rejects
        for path in paths:
            slots = _find_slots(r.obj, split_field_path(path), create)
            if not slots:
                verb = "find or create" if create else "find"
                raise KustomizeError(f'{where}: unable to {verb} field "{path}" in replacement target')
            for container, key, created in slots:
                untyped = created or isinstance(container[key], UntypedText)
                if untyped and not isinstance(value, dict | list):
                    # a created field gets the text only; YAML types it when printed
                    text = _scalar_text(_new_value("", value, delimiter, index, where))
                    container[key] = UntypedText(text)
                    r.has_untyped = True
                else:
                    container[key] = _new_value(container[key], value, delimiter, index, where)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    return as_text(value)


def _new_value(current: Any, value: Any, delimiter: str, index: int, where: str) -> Any:
    if delimiter:
        if isinstance(current, dict | list):
            raise KustomizeError(f"{where}: delimiter option can only be used with scalar nodes")
        pieces = _scalar_text(current).split(delimiter)
        text = _scalar_text(value)
        if index < 0:
            pieces.insert(0, text)
        elif index >= len(pieces):
            pieces.append(text)
        else:
            pieces[index] = text
        value = delimiter.join(pieces)
    if isinstance(current, dict | list) or current is None or isinstance(value, dict | list):
        return copy.deepcopy(value)
    # a scalar keeps its type: only the text is replaced
    text = _scalar_text(value)
    if isinstance(current, bool):
        if text in ("true", "false"):
            return text == "true"
        raise KustomizeError(f"{where}: cannot use {text!r} as a boolean in replacement target")
    if isinstance(current, int):
        try:
            return int(text, 0) if text[:2].lower() in ("0x", "0o", "0b") else int(text)
        except ValueError:
            raise KustomizeError(
                f"{where}: cannot use {text!r} as an integer in replacement target"
            ) from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise KustomizeError(f"{where}: cannot use {text!r} as a number in replacement target") from None
    return text


def _lookup(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(node, list):
            match = _element_match(part)
            if match is None:
                return None
            key, wanted = match
            node = next((e for e in node if isinstance(e, dict) and as_text(e.get(key)) == wanted), None)
        elif isinstance(node, dict):
            node = node.get(_field_name(part))
        else:
            return None
        if node is None:
            return None
    return node


def _element_match(part: str) -> tuple[str, str] | None:
    if part.startswith("[") and part.endswith("]") and "=" in part:
        key, _, value = part[1:-1].partition("=")
        return key, value
    return None


def _field_name(part: str) -> str:
    if part.startswith("[") and part.endswith("]") and "=" not in part:
        return part[1:-1]
    return part


Slot = tuple[Any, Any, bool]


def _find_slots(node: Any, parts: list[str], create: bool) -> list[Slot]:
    """(container, key, created) of every field the path designates; ``create`` adds missing ones."""
    slots: list[Slot] = []
    _walk(node, parts, create, slots)
    return slots


def _walk(node: Any, parts: list[str], create: bool, slots: list[Slot]) -> None:
    part, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if part == "*":
            indices = list(range(len(node)))
        else:
            match = _element_match(part)
            if match is None:
                return
            key, wanted = match
            indices = [i for i, e in enumerate(node) if isinstance(e, dict) and as_text(e.get(key)) == wanted]
            if not indices and create:
                node.append({key: wanted})
                indices = [len(node) - 1]
        for i in indices:
            if rest:
                _walk(node[i], rest, create, slots)
            else:
                slots.append((node, i, False))
        return
    if not isinstance(node, dict):
        return
    keys = list(node) if part == "*" else [_field_name(part)]
    for key in keys:
        created = False
        if key not in node:
            if not create:
                continue
            node[key] = {} if rest else None
            created = True
        if rest:
            if node[key] is None and create:
                node[key] = [] if _element_match(rest[0]) else {}
            _walk(node[key], rest, create, slots)
        else:
            slots.append((node, key, created))
