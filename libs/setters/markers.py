"""Flux setter markers: find `# {"$imagepolicy": "<ns>:<name>[:tag|:name|:digest]"}` line comments
in YAML files and rewrite the scalar before each one, leaving every other byte of the file as it was.

The edit is textual (line level): the marker comment is located, only the scalar in front of it is
replaced, and a quoted scalar keeps its quote style. YAML is parsed (ruamel) only to learn which
object (apiVersion, kind, metadata.name/namespace) a marked line belongs to, for the commit
message template's `.Changed` data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken

__all__ = [
    "MARKER_TOKEN",
    "Change",
    "ImageRef",
    "ObjectIdentifier",
    "Result",
    "SetterError",
    "apply_setters",
    "update_text",
]

MARKER_TOKEN = '"$imagepolicy"'
"""Only files literally containing this token are parsed (as Flux's pre-screening)."""

SUFFIXES = ("tag", "name", "digest")

# A line comment whose body is a JSON object holding the `$imagepolicy` key.
_MARKER = re.compile(r'(?P<ws>[ \t]+)#[ \t]*(?P<json>\{[^#]*"\$imagepolicy"[^#]*\})[ \t]*\r?$')
# `<indent>[- ]...[key:<space>]` in front of the scalar.
_PREFIX = re.compile(
    r"""^(?P<prefix>[ \t]*(?:-[ \t]+)*(?:(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\-{[][^#]*?|-[^\s#][^#]*?)[ \t]*:[ \t]+)?)(?P<value>.*)$"""
)
_DOC_START = re.compile(r"^---(?:[ \t]|$)")
_DOC_END = re.compile(r"^\.\.\.(?:[ \t]|$)")
# Plain scalars that YAML (1.1 or 1.2) would not read as a string, or that need quoting.
_NON_STRING = re.compile(
    r"""^(?:[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|0x[0-9a-fA-F_]+|0o?[0-7_]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|
    |\d+(?::[0-5]?\d)+(?:\.\d*)?)$""",
    re.VERBOSE,
)


class SetterError(ValueError):
    """A marked file that cannot be updated (unparseable YAML, a marker on a non-scalar)."""


@dataclass(frozen=True)
class ImageRef:
    """What an ImagePolicy selected (`status.latestRef`)."""

    name: str
    tag: str
    digest: str | None = None

    def __str__(self) -> str:
        ref = f"{self.name}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


@dataclass(frozen=True, order=True)
class ObjectIdentifier:
    """The object a change was made in (Flux's kyaml ResourceIdentifier; sorts like Go's fmtsort)."""

    APIVersion: str = ""
    Kind: str = ""
    Name: str = ""
    Namespace: str = ""

    def __str__(self) -> str:
        return f"{{{{{self.APIVersion} {self.Kind}}} {{{self.Name} {self.Namespace}}}}}"


@dataclass(frozen=True)
class Change:
    """One scalar rewritten: old and new value and the setter (`<ns>:<name>[:field]`) that did it."""

    OldValue: str
    NewValue: str
    Setter: str

    def __str__(self) -> str:
        return f"{{{self.OldValue} {self.NewValue} {self.Setter}}}"


@dataclass
class Result:
    """Flux's `update.Result`: file (relative to the scanned root) → object → changes."""

    FileChanges: dict[str, dict[ObjectIdentifier, list[Change]]] = field(default_factory=dict)

    def Changes(self) -> list[Change]:
        """Every change, file by file in sorted order."""
        return [c for f in sorted(self.FileChanges) for obj in self.FileChanges[f].values() for c in obj]

    def Objects(self) -> dict[ObjectIdentifier, list[Change]]:
        """Changes per object, across files."""
        out: dict[ObjectIdentifier, list[Change]] = {}
        for f in sorted(self.FileChanges):
            for obj, changes in self.FileChanges[f].items():
                out.setdefault(obj, []).extend(changes)
        return out

    def __bool__(self) -> bool:
        return bool(self.FileChanges)


def _setter_value(setter: str, policies: Mapping[str, ImageRef]) -> str | None:
    """The value the setter writes, or None if it names no policy with a latestRef."""
    parts = setter.split(":")
    if len(parts) == 2:
        ref = policies.get(setter)
        return str(ref) if ref is not None else None
    if len(parts) == 3 and parts[2] in SUFFIXES:
        ref = policies.get(f"{parts[0]}:{parts[1]}")
        if ref is None:
            return None
        if parts[2] == "tag":
            return ref.tag
        if parts[2] == "name":
            return ref.name
        return ref.digest or None
    return None


def _decode_scalar(raw: str) -> tuple[str, str]:
    """(style, value) of the scalar text in front of a marker; style is `"`, `'` or `` (plain)."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return '"', str(json.loads(raw))
        except ValueError:
            return '"', raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return "'", raw[1:-1].replace("''", "'")
    return "", raw


def _needs_quotes(value: str) -> bool:
    if not value or _NON_STRING.match(value):
        return True
    if value[0] in "!&*-?:,[]{}#|>@`\"'%" and not (value[0] == "-" and len(value) > 1 and value[1] != " "):
        return True
    return ": " in value or " #" in value or value != value.strip() or value.endswith(":")


def _encode_scalar(style: str, value: str) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or _needs_quotes(value):
        return json.dumps(value)
    return value


@dataclass(frozen=True)
class _Edit:
    line: int
    setter: str
    old: str
    new: str


def _marked_lines(
    lines: list[str], comment_lines: Set[int] | None = None
) -> Iterator[tuple[int, str, str, str, str, str]]:
    """(index, prefix, raw scalar, separator+comment, line ending, setter) for each marker line."""
    for i, line in enumerate(lines):
        if "$imagepolicy" not in line or (comment_lines is not None and i not in comment_lines):
            continue
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        m = _MARKER.search(body)
        if m is None:
            continue
        try:
            marker = json.loads(m.group("json"))
        except ValueError:
            continue
        setter = marker.get("$imagepolicy") if isinstance(marker, dict) else None
        if not isinstance(setter, str):
            continue
        head = body[: m.start()]
        pm = _PREFIX.match(head)
        if pm is None:
            continue
        raw = pm.group("value")
        if not raw.strip():
            continue  # a comment on a line of its own belongs to no scalar (as in Flux)
        if raw[0] in "|>{[&*!":
            raise SetterError(f"line {i + 1}: the {setter!r} marker must follow a plain or quoted scalar")
        yield i, pm.group("prefix"), raw, body[m.start() :], ending, setter


def update_text(
    text: str, policies: Mapping[str, ImageRef], comment_lines: Set[int] | None = None
) -> tuple[str, list[_Edit]]:
    """Rewrite every marked scalar whose setter has a value; every other byte is kept.

    `comment_lines` (0-based), when given, are the lines YAML reads a comment on: a marker-like
    text anywhere else (inside a block scalar, a multi-line string) is content, not a marker."""
    lines = text.splitlines(keepends=True)
    edits: list[_Edit] = []
    for i, prefix, raw, comment, ending, setter in _marked_lines(lines, comment_lines):
        new = _setter_value(setter, policies)
        if new is None:
            continue
        style, old = _decode_scalar(raw)
        if old == new:
            continue
        lines[i] = prefix + _encode_scalar(style, new) + comment + ending
        edits.append(_Edit(i, setter, old, new))
    return "".join(lines), edits


def _comment_tokens(value: Any) -> Iterator[CommentToken]:
    if isinstance(value, CommentToken):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _comment_tokens(item)


def _comment_lines(text: str, path: str) -> set[int]:
    """The 0-based lines on which YAML reads a comment holding `$imagepolicy` (scanner tokens,
    so text inside block scalars and quoted strings is never mistaken for a marker)."""
    lines: set[int] = set()
    try:
        for token in YAML(typ="rt").scan(text):
            for comment in _comment_tokens(getattr(token, "_comment", None)):
                if "$imagepolicy" in comment.value:
                    # A token may carry several comment lines; each starts with '#'.
                    first = comment.start_mark.line
                    for offset, part in enumerate(comment.value.split("\n")):
                        if "$imagepolicy" in part:
                            lines.add(first + offset)
    except YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SetterError(f"{path}: invalid YAML: {problem}") from None
    return lines


def _object_of(doc: Any) -> ObjectIdentifier:
    if not isinstance(doc, Mapping):
        return ObjectIdentifier()
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return ObjectIdentifier(
        APIVersion=text(doc.get("apiVersion")),
        Kind=text(doc.get("kind")),
        Name=text(meta.get("name")),
        Namespace=text(meta.get("namespace")),
    )


def _objects_by_line(text: str, path: str) -> list[ObjectIdentifier]:
    """The object each line of `text` belongs to (documents split on `---` / `...` lines)."""
    lines = text.splitlines(keepends=True)
    owners: list[ObjectIdentifier] = [ObjectIdentifier()] * len(lines)
    yaml = YAML(typ="safe", pure=True)
    start = 0

    def close(end: int) -> None:
        chunk = "".join(lines[start:end])
        if not chunk.strip():
            return
        try:
            doc = yaml.load(chunk)
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise SetterError(f"{path}: invalid YAML: {problem}") from None
        ident = _object_of(doc)
        for j in range(start, end):
            owners[j] = ident

    for i, line in enumerate(lines):
        if _DOC_START.match(line) or _DOC_END.match(line):
            close(i)
            start = i + 1 if _DOC_END.match(line) else i
    close(len(lines))
    return owners


def _candidate(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or name == "Kustomization"


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if _candidate(name) and not path.is_symlink():
                yield path


def apply_setters(root: Path, policies: Mapping[str, ImageRef]) -> Result:
    """Rewrite the marked scalars of every YAML file under `root` in place.

    `policies` maps `<namespace>:<name>` to the policy's latestRef. Only files whose bytes change
    are written. Raises SetterError for a marked file that cannot be handled.
    """
    result = Result()
    for path in _walk(root):
        data = path.read_bytes()
        if MARKER_TOKEN.encode() not in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(root).as_posix()
        new_text, edits = update_text(text, policies, _comment_lines(text, rel))
        if not edits:
            continue
        owners = _objects_by_line(text, rel)
        changes: dict[ObjectIdentifier, list[Change]] = {}
        for edit in edits:
            changes.setdefault(owners[edit.line], []).append(Change(edit.old, edit.new, edit.setter))
        path.write_bytes(new_text.encode("utf-8"))
        result.FileChanges[rel] = changes
    return result
