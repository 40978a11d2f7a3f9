"""YAML input and output with kustomize's exact semantics.

Input: kustomize parses manifests with go-yaml v3 (YAML 1.2 core schema, so ``yes``/``on``
stay strings while ``0777`` is an octal int); PyYAML's YAML 1.1 resolver is replaced by one
that follows go-yaml v3's ``resolve``.

Output: ``kustomize build`` converts every resource to JSON and marshals it with go-yaml v2,
so the emitter here reproduces go-yaml v2's encoder for JSON-shaped data: keys sorted with
go-yaml's "natural" key order, block style, sequences not indented under their key, plain
scalars where the YAML 1.1 resolver would still read a string, single quotes where plain is
not allowed, double quotes for non-printable content, ``|`` literals for multi-line strings
and folding of long flow scalars once a line passes 80 columns.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import re
from collections.abc import Iterator
from typing import Any

import yaml

try:  # the libyaml parser is several times faster; fall back to pure Python where absent
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["YAMLInputError", "dump_document", "dump_stream", "load_all", "plain_resolves_to_string"]


class YAMLInputError(ValueError):
    """Malformed YAML, with the message go-yaml would print (``yaml: line N: problem``)."""


# --------------------------------------------------------------------------------------------
# Loading: go-yaml v3 resolution of plain scalars
# --------------------------------------------------------------------------------------------

_TAG_NULL = "tag:yaml.org,2002:null"
_TAG_BOOL = "tag:yaml.org,2002:bool"
_TAG_STR = "tag:yaml.org,2002:str"
_TAG_MERGE = "tag:yaml.org,2002:merge"
_TAG_V3 = "tag:sluice.dev,2024:v3-plain"

_V3_MAP: dict[str, Any] = {
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
}

_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_FLOAT = re.compile(
    r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?(?:inf|infinity|nan)$", re.I
)
_DATE = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$")
_DATETIME = re.compile(
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})"
    r"(?:\.([0-9]+))?[ \t]*(Z|[-+][0-9]{1,2}(?::?[0-9]{2})?)?$"
)
_INT64_MIN = -(1 << 63)
_UINT64_MAX = (1 << 64) - 1


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) falling back to ParseUint, as go-yaml does."""
    body = text
    sign = 1
    if body[:1] in "+-":
        if body[0] == "-":
            sign = -1
        body = body[1:]
    if not body:
        return None
    base = 10
    low = body[:2].lower()
    if low == "0x":
        base, body = 16, body[2:]
    elif low == "0b":
        base, body = 2, body[2:]
    elif low == "0o":
        base, body = 8, body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
    if not body or not all(c in "0123456789abcdefABCDEF"[: base if base <= 10 else 22] for c in body):
        return None
    value = sign * int(body, base)
    if value < _INT64_MIN or value > _UINT64_MAX or (sign < 0 and value < _INT64_MIN):
        return None
    return value


def _parse_timestamp(text: str) -> str | None:
    """go-yaml's parseTimestamp; returns the RFC 3339 text Go's JSON encoder would print."""
    digits = 0
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    if digits != 4 or digits == len(text) or text[digits] != "-":
        return None
    m = _DATE.match(text)
    try:
        if m:
            day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
            return f"{day.isoformat()}T00:00:00Z"
        m = _DATETIME.match(text)
        if not m:
            return None
        frac = (m[7] or "").rstrip("0")
        stamp = datetime.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
    except ValueError:
        return None
    base = stamp.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac[:9]}" if frac else "")
    zone = m[8]
    if not zone or zone == "Z":
        return base + "Z"
    sign, rest = zone[0], zone[1:].replace(":", "")
    hours, minutes = (rest[:-2], rest[-2:]) if len(rest) > 2 else (rest, "00")
    if int(hours) == 0 and int(minutes) == 0:
        return base + "Z"
    return f"{base}{sign}{int(hours):02d}:{minutes}"


def resolve_plain_v3(text: str, timestamps: bool = True) -> Any:
    """Value of a plain (unquoted, untagged) scalar under go-yaml v3 + kyaml's JSON round trip.

    Timestamps become RFC 3339 strings (as in resources); with ``timestamps=False`` they stay
    as written (as in kustomization files, which kustomize reads through JSON).
    """
    if not text:
        return None
    first = text[0]
    if first in "yYnNtTfFoO~":
        return _V3_MAP.get(text, text)
    if first == ".":
        if text in _V3_MAP:
            return _V3_MAP[text]
        if _GO_FLOAT.match(text):
            return float(text)
        return text
    if first.isdigit() or first in "+-":
        if text in _V3_MAP:
            return _V3_MAP[text]
        if first.isdigit() and timestamps:
            stamp = _parse_timestamp(text)
            if stamp is not None:
                return stamp
        plain = text.replace("_", "")
        value = _go_parse_int(plain)
        if value is not None:
            return value
        if _YAML_STYLE_FLOAT.match(plain):
            return float(plain)
        return text
    if text in _V3_MAP:
        return _V3_MAP[text]
    return text


class _Loader(_BaseLoader):
    """PyYAML loader whose implicit typing follows go-yaml v3 instead of YAML 1.1."""

    timestamps = True

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                if value == "<<":
                    return _TAG_MERGE
                return _TAG_V3
            return _TAG_STR
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]


def _construct_v3(loader: _Loader, node: yaml.ScalarNode) -> Any:
    return resolve_plain_v3(str(node.value), loader.timestamps)


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(node.value)


_Loader.add_constructor(_TAG_V3, _construct_v3)
_Loader.add_constructor(_TAG_STR, _construct_str)
# Explicitly tagged scalars keep their literal text unless the tag is a known core type.
_Loader.add_constructor(_TAG_BOOL, _construct_v3)
_Loader.add_constructor(_TAG_NULL, _construct_v3)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_v3)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_v3)


def _go_yaml_error(exc: yaml.YAMLError) -> str:
    """Render a PyYAML error the way go-yaml v3 reports it: ``yaml: line N: problem``."""
    problem = getattr(exc, "problem", None) or "unknown problem parsing YAML content"
    context_mark = getattr(exc, "context_mark", None)
    problem_mark = getattr(exc, "problem_mark", None)
    scanner = isinstance(exc, yaml.scanner.ScannerError)
    line = 0
    if context_mark is not None and context_mark.line != 0:
        line = context_mark.line + (1 if scanner else 0)
    elif problem_mark is not None and problem_mark.line != 0:
        line = problem_mark.line + (1 if scanner else 0)
    where = f"line {line}: " if line else ""
    return f"yaml: {where}{problem}"


class _KustomizationLoader(_Loader):
    timestamps = False


try:
    from yaml import CSafeLoader as _SafeBase
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _SafeBase  # type: ignore[assignment]


class _GoYamlV2Loader(_SafeBase):
    """YAML 1.1 as go-yaml v2 resolves it (sigs.k8s.io/yaml, which kustomize uses to decode JSON
    6902 patches): besides PyYAML's YAML 1.1 booleans, ``y``/``Y``/``n``/``N`` are booleans too."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


_GoYamlV2Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def load_all_v2(text: str) -> list[Any]:
    """Parse a stream the way sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) does."""
    try:
        return list(yaml.load_all(text, Loader=_GoYamlV2Loader))
    except yaml.YAMLError as exc:
        raise YAMLInputError(_go_yaml_error(exc)) from None


def load_all(text: str, *, timestamps: bool = True) -> list[Any]:
    """Parse a multi-document YAML stream; empty documents come back as ``None``."""
    loader = _Loader if timestamps else _KustomizationLoader
    try:
        docs = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        raise YAMLInputError(_go_yaml_error(exc)) from None
    if "&" in text:
        # An alias yields the anchored object itself; kustomize works on copies.
        docs = [_unalias(doc, set()) for doc in docs]
    return docs


def _unalias(node: Any, seen: set[int]) -> Any:
    if isinstance(node, dict | list):
        if id(node) in seen:
            node = copy.deepcopy(node)
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                node[key] = _unalias(value, seen)
        else:
            for index, value in enumerate(node):
                node[index] = _unalias(value, seen)
    return node


# --------------------------------------------------------------------------------------------
# Output: go-yaml v2's encoder for JSON-shaped data
# --------------------------------------------------------------------------------------------

_BEST_WIDTH = 80
_V2_NON_STRINGS = frozenset(
    {
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE"),
        *("on", "On", "ON", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN"),
        *(".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", "<<"),
    }
)
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def plain_resolves_to_string(text: str) -> bool:
    """True when go-yaml v2 would read ``text`` back as a string if written unquoted."""
    if not text or text in _V2_NON_STRINGS:
        return False
    first = text[0]
    if first == ".":
        return not _GO_FLOAT.match(text)
    if first.isdigit() or first in "+-":
        if first.isdigit() and _parse_timestamp(text) is not None:
            return False
        plain = text.replace("_", "")
        if _go_parse_int(plain) is not None:
            return False
        if _YAML_STYLE_FLOAT.match(plain):
            return False
        if ":" in text and _BASE60.match(text):
            return False
    return True


def _printable(code: int) -> bool:
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


_BREAKS = frozenset("\r\n\x85\u2028\u2029")


class _ScalarAnalysis:
    __slots__ = ("block_allowed", "block_plain_allowed", "multiline", "single_quoted_allowed")

    def __init__(self, value: str) -> None:
        self.multiline = False
        self.block_plain_allowed = True
        self.single_quoted_allowed = True
        self.block_allowed = True
        if not value:
            self.block_allowed = False
            return
        block_indicators = value[:3] in ("---", "...")
        line_breaks = special = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        previous_space = previous_break = False
        preceded_by_ws = True
        last = len(value) - 1
        for i, ch in enumerate(value):
            followed_by_ws = i == last or value[i + 1] in " \t" or value[i + 1] in _BREAKS
            if i == 0:
                indicator = ch in "#,[]{}&*!|>'\"%@`" or (ch in "?:-" and followed_by_ws)
            else:
                indicator = (ch == ":" and followed_by_ws) or (ch == "#" and preceded_by_ws)
            if indicator:
                block_indicators = True
            if not _printable(ord(ch)):
                special = True
            if ch == " ":
                if i == 0:
                    leading_space = True
                if i == last:
                    trailing_space = True
                if previous_break:
                    break_space = True
                previous_space, previous_break = True, False
            elif ch in _BREAKS:
                line_breaks = True
                if i == 0:
                    leading_break = True
                if i == last:
                    trailing_break = True
                if previous_space:
                    space_break = True
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_ws = ch in " \t" or ch in _BREAKS
        self.multiline = line_breaks
        if leading_space or leading_break or trailing_space or trailing_break:
            self.block_plain_allowed = False
        if trailing_space:
            self.block_allowed = False
        if break_space:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
        if space_break or special:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
            self.block_allowed = False
        if line_breaks or block_indicators:
            self.block_plain_allowed = False


_ESCAPES = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0A: "n",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x22: '"',
    0x5C: "\\",
    0x85: "N",
    0xA0: "_",
    0x2028: "L",
    0x2029: "P",
}


def _escape(ch: str) -> str:
    code = ord(ch)
    short = _ESCAPES.get(code)
    if short is not None:
        return "\\" + short
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


class _Writer:
    """Tracks the output column the way libyaml's emitter does (one column per code point)."""

    __slots__ = ("column", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.column = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.column += len(text)

    def newline(self) -> None:
        self.parts.append("\n")
        self.column = 0

    def indent_to(self, indent: int) -> None:
        """libyaml's write_indent for a fresh line."""
        self.newline()
        if indent:
            self.write(" " * indent)


def _write_plain(w: _Writer, value: str, indent: int, allow_breaks: bool) -> None:
    if not allow_breaks or len(value) + w.column <= _BEST_WIDTH or " " not in value:
        w.write(value)
        return
    spaces = False
    n = len(value)
    i = 0
    while i < n:
        ch = value[i]
        if ch == " ":
            if not spaces and w.column > _BEST_WIDTH and not (i + 1 < n and value[i + 1] == " "):
                w.indent_to(indent)
            else:
                w.write(ch)
            spaces = True
        else:
            # write the whole run of non-space characters at once
            j = value.find(" ", i)
            if j < 0:
                j = n
            w.write(value[i:j])
            i = j
            spaces = False
            continue
        i += 1


def _write_single(w: _Writer, value: str, indent: int, allow_breaks: bool) -> None:
    w.write("'")
    spaces = False
    n = len(value)
    for i, ch in enumerate(value):
        if ch == " ":
            if (
                allow_breaks
                and not spaces
                and w.column > _BEST_WIDTH
                and 0 < i < n - 1
                and value[i + 1] != " "
            ):
                w.indent_to(indent)
            else:
                w.write(ch)
            spaces = True
        else:
            w.write("''" if ch == "'" else ch)
            spaces = False
    w.write("'")


def _write_double(w: _Writer, value: str, indent: int, allow_breaks: bool) -> None:
    w.write('"')
    spaces = False
    n = len(value)
    for i, ch in enumerate(value):
        code = ord(ch)
        if not _printable(code) or code == 0xFEFF or ch in _BREAKS or ch in '"\\':
            w.write(_escape(ch))
            spaces = False
        elif ch == " ":
            if allow_breaks and not spaces and w.column > _BEST_WIDTH and 0 < i < n - 1:
                w.indent_to(indent)
                if value[i + 1] == " ":
                    w.write("\\")
            else:
                w.write(ch)
            spaces = True
        else:
            w.write(ch)
            spaces = False
    w.write('"')


def _write_literal(w: _Writer, value: str, indent: int) -> None:
    hints = "|"
    if value[0] == " " or value[0] in _BREAKS:
        hints += "2"
    if value[-1] not in _BREAKS:
        hints += "-"
    elif len(value) == 1 or value[-2] in _BREAKS:
        hints += "+"
    w.write(hints)
    pad = " " * indent
    lines = value.split("\n")
    if value.endswith("\n"):
        lines.pop()
    for line in lines:
        w.newline()
        if line:
            w.write(pad + line)


@functools.lru_cache(maxsize=65536)
def _string_style(value: str, simple_key: bool) -> str:
    """The scalar style go-yaml v2 picks: ``""`` plain, ``'`` single, ``"`` double, ``|`` literal."""
    analysis = _ScalarAnalysis(value)
    if "\n" in value and not simple_key:
        return "|" if analysis.block_allowed else '"'
    if (simple_key and analysis.multiline) or not plain_resolves_to_string(value):
        return '"'
    if analysis.block_plain_allowed:
        return ""
    if analysis.single_quoted_allowed:
        return "'"
    return '"'


def _write_string(w: _Writer, value: str, indent: int, simple_key: bool) -> None:
    style = _string_style(value, simple_key)
    allow_breaks = not simple_key
    if style == "":
        _write_plain(w, value, indent, allow_breaks)
    elif style == "'":
        _write_single(w, value, indent, allow_breaks)
    elif style == '"':
        _write_double(w, value, indent, allow_breaks)
    else:
        _write_literal(w, value, indent)


def _go_g_format(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'g', -1, 64), with go-yaml's spelling of inf/nan."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    stripped = all_digits.lstrip("0")
    point = len(int_part) + (int(exp_text) if exp_text else 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # shortest formatting decides with precision 6
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return sign + "0." + "0" * (-point) + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def _json_float(value: float) -> str:
    """A float after Go's JSON encoder (integral values print as integers) and go-yaml v2."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return _go_g_format(value)


def _scalar_text(value: Any) -> str | None:
    """Text of a non-string scalar, or None for strings."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    return None


def _go_key_less(a: str, b: str) -> bool:
    """go-yaml v2's keyList.Less for two string keys."""
    ar, br = a, b
    for i in range(min(len(ar), len(br))):
        ca, cb = ar[i], br[i]
        if ca == cb:
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and ar[j].isdigit():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdigit():
            an = an * 10 + int(ar[ai])
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdigit():
            bn = bn * 10 + int(br[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(ar) < len(br)


def _go_key_cmp(a: str, b: str) -> int:
    if _go_key_less(a, b):
        return -1
    if _go_key_less(b, a):
        return 1
    return 0


_SIMPLE_KEY = re.compile(r"^[A-Za-z][A-Za-z./_-]*$")


@functools.lru_cache(maxsize=8192)
def _sorted_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    if all(_SIMPLE_KEY.match(k) for k in keys):
        # Without digits the natural order reduces to: letters by code point, non-letters first.
        return tuple(sorted(keys, key=_letter_key))
    return tuple(sorted(keys, key=functools.cmp_to_key(_go_key_cmp)))


def _letter_key(key: str) -> tuple[tuple[int, int], ...]:
    return (*((1, ord(c)) if c.isalpha() else (0, ord(c)) for c in key), (-1, 0))


def _key_string(key: Any) -> str:
    if isinstance(key, str):
        return key
    text = _scalar_text(key)
    return text if text is not None else str(key)


def _emit_mapping(w: _Writer, mapping: dict[Any, Any], indent: int, inline_first: bool) -> None:
    keys = [_key_string(k) for k in mapping]
    lookup = dict(zip(keys, mapping.values(), strict=True))
    first = True
    for key in _sorted_keys(tuple(keys)):
        if not (first and inline_first):
            if w.parts:
                w.newline()
            if indent:
                w.write(" " * indent)
        first = False
        if len(key) <= 128 and _is_simple_key(key):
            _write_string(w, key, indent + 2, True)
            w.write(":")
            _emit_value(w, lookup[key], indent)
        else:
            _emit_complex_entry(w, key, lookup[key], indent)


def _is_simple_key(key: str) -> bool:
    """libyaml's check_simple_key for a string key: one line and at most 128 bytes."""
    return len(key.encode("utf-8")) <= 128 and not any(ch in _BREAKS for ch in key)


def _emit_complex_entry(w: _Writer, key: str, value: Any, indent: int) -> None:
    """``? key`` / ``: value``, go-yaml's form for multi-line or very long keys."""
    w.write("? ")
    _write_string(w, key, indent + 2, False)
    w.newline()
    if indent:
        w.write(" " * indent)
    w.write(":")
    if isinstance(value, dict) and value:
        w.write(" ")
        _emit_mapping(w, value, indent + 2, True)
    elif isinstance(value, list) and value:
        w.write(" ")
        _emit_sequence(w, value, indent + 2, True)
    else:
        _emit_value(w, value, indent)


def _emit_value(w: _Writer, value: Any, indent: int) -> None:
    """Emit a mapping value right after ``key:``; ``indent`` is the mapping's indent."""
    if isinstance(value, dict):
        if value:
            _emit_mapping(w, value, indent + 2, False)
        else:
            w.write(" {}")
    elif isinstance(value, list):
        if value:
            _emit_sequence(w, value, indent, False)
        else:
            w.write(" []")
    elif isinstance(value, str):
        w.write(" ")
        _write_string(w, value, indent + 2, False)
    else:
        w.write(" " + (_scalar_text(value) or ""))


def _emit_sequence(w: _Writer, seq: list[Any], indent: int, inline_first: bool) -> None:
    first = True
    for item in seq:
        if not (first and inline_first):
            w.newline()
            if indent:
                w.write(" " * indent)
        first = False
        w.write("-")
        if isinstance(item, dict):
            if item:
                w.write(" ")
                _emit_mapping(w, item, indent + 2, True)
            else:
                w.write(" {}")
        elif isinstance(item, list):
            if item:
                w.write(" ")
                _emit_sequence(w, item, indent + 2, True)
            else:
                w.write(" []")
        elif isinstance(item, str):
            w.write(" ")
            _write_string(w, item, indent + 2, False)
        else:
            w.write(" " + (_scalar_text(item) or ""))


def dump_document(obj: Any) -> str:
    """One document exactly as go-yaml v2's Marshal prints it (ends with a newline)."""
    w = _Writer()
    if isinstance(obj, dict):
        if obj:
            _emit_mapping(w, obj, 0, True)
        else:
            w.write("{}")
    elif isinstance(obj, list):
        if obj:
            _emit_sequence(w, obj, 0, True)
        else:
            w.write("[]")
    elif isinstance(obj, str):
        _write_string(w, obj, 0, False)
    else:
        w.write(_scalar_text(obj) or "")
    w.newline()
    return "".join(w.parts)


def dump_stream(objs: list[Any]) -> str:
    """Documents separated by ``---`` lines, as ``kustomize build`` prints them."""
    return "---\n".join(dump_document(o) for o in objs)


def iter_documents(text: str) -> Iterator[Any]:
    """Non-empty documents of a stream."""
    for doc in load_all(text):
        if doc is not None:
            yield doc
