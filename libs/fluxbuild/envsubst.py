"""Flux's post-build variable substitution language (fluxcd/pkg/envsubst, a fork of drone/envsubst).

Only ``${...}`` is special; ``$var`` without braces is left alone and ``$$`` is an escape for one
``$`` (so ``$${var}`` stays the literal text ``${var}``). Supported forms, as in Flux:

=====================  =========================================================
``${var}``             the value
``${var:=default}``    the value, or ``default`` when it is empty or unset
                       (``:-``, ``:?``, ``:+`` and ``=`` behave the same way in Flux)
``${var:pos}``         substring from ``pos`` (negative counts from the end)
``${var:pos:len}``     substring of ``len`` characters (negative ``len`` trims the end)
``${#var}``            length
``${var^}`` ``${var^^}`` ``${var,}`` ``${var,,}``   upper/lower case first/all
``${var#pat}`` ``${var##pat}`` ``${var%pat}`` ``${var%%pat}``   trim shortest/longest
                       prefix/suffix matching a glob
``${var/a/b}`` ``${var//a/b}`` ``${var/#a/b}`` ``${var/%a/b}``   replace first/all/prefix/suffix
=====================  =========================================================

The scanner and parser follow Flux's state machine closely, so malformed expressions fail with
the same errors (``bad substitution``, ``missing closing brace``, ``unable to parse variable
name`` …). In strict mode a variable that is not defined, used without a default-providing
operator, is an error naming it: ``variable not set (strict mode): "NAME"``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SubstitutionError", "VariableNotSet", "evaluate", "parse"]


class SubstitutionError(ValueError):
    """The text holds a malformed ``${...}`` expression, or strict mode found an undefined variable."""


class VariableNotSet(SubstitutionError):
    """Strict mode: a variable without a default is not defined."""

    def __init__(self, name: str) -> None:
        super().__init__(f'variable not set (strict mode): "{name}"')
        self.name = name


BAD_SUBSTITUTION = "bad substitution"
MISSING_CLOSING_BRACE = "missing closing brace"
PARSE_VARIABLE_NAME = "unable to parse variable name"
PARSE_FUNC_SUBSTITUTION = "unable to parse substitution within function"
PARSE_DEFAULT_FUNCTION = "unable to parse default function"

# --- nodes -----------------------------------------------------------------------------------------


@dataclass
class _Text:
    value: str


@dataclass
class _Func:
    param: str = ""
    name: str = ""
    args: list[_Node] = field(default_factory=list)


@dataclass
class _List:
    nodes: list[_Node]


_Node = _Text | _Func | _List

# --- scanner ---------------------------------------------------------------------------------------

_EOF = ""  # the scanner's end marker (never a real character: reads are one character long)

_TOK_ILLEGAL, _TOK_EOF, _TOK_IDENT, _TOK_LBRACK, _TOK_RBRACK = range(5)

_SCAN_IDENT, _SCAN_LBRACK, _SCAN_RBRACK, _SCAN_ESCAPE = 1, 2, 4, 8
_ESC_DOLLAR, _ESC_BACKSLASH = 1, 2
_ESC_ALL = _ESC_DOLLAR | _ESC_BACKSLASH

_Accept = Callable[[str, int], bool]


def _accept_rune(r: str, i: int) -> bool:
    return True


def _accept_ident(r: str, i: int) -> bool:
    return r.isalnum() or r == "_"


def _accept_colon(r: str, i: int) -> bool:
    return r == ":"


def _accept_one_hash(r: str, i: int) -> bool:
    return r == "#" and i == 1


def _accept_not_closing(r: str, i: int) -> bool:
    return r != "}"


def _accept_hash_func(r: str, i: int) -> bool:
    return r == "#" and i < 3


def _accept_percent_func(r: str, i: int) -> bool:
    return r == "%" and i < 3


def _accept_default_func(r: str, i: int) -> bool:
    return (i == 1 and r == ":") or (i == 2 and r in "=-?+")


def _accept_replace_func(r: str, i: int) -> bool:
    return (i == 1 and r == "/") or (i == 2 and r in "/#%")


def _accept_one_equal(r: str, i: int) -> bool:
    return i == 1 and r == "="


def _accept_one_colon(r: str, i: int) -> bool:
    return i == 1 and r == ":"


def _reject_colon_close(r: str, i: int) -> bool:
    return r not in (":", "}")


def _accept_slash(r: str, i: int) -> bool:
    return r == "/"


def _accept_not_slash(r: str, i: int) -> bool:
    return r != "/"


def _accept_casing_func(r: str, i: int) -> bool:
    return r in (",", "^") and i < 3


class _Scanner:
    def __init__(self, buf: str) -> None:
        self.buf = buf
        self.pos = 0
        self.start = 0
        self.width = 0
        self.mode = 0
        self.escape_chars = 0
        self.accept: _Accept = _accept_rune

    def read(self) -> str:
        if self.pos >= len(self.buf):
            self.width = 0
            return _EOF
        r = self.buf[self.pos]
        self.width = 1
        self.pos += 1
        return r

    def unread(self) -> None:
        self.pos -= self.width

    def skip(self) -> None:
        """Drop the character just read; the one after it counts as consumed (an escape pair)."""
        self.buf = self.buf[: self.pos - 1] + self.buf[self.pos :]

    def peek(self) -> str:
        r = self.read()
        self.unread()
        return r

    def string(self) -> str:
        return self.buf[self.start : self.pos]

    def scan(self) -> int:
        self.start = self.pos
        r = self.read()
        if r == _EOF:
            return _TOK_EOF
        if self._scan_lbrack(r):
            return _TOK_LBRACK
        if self._scan_rbrack(r):
            return _TOK_RBRACK
        if self._scan_ident(r):
            return _TOK_IDENT
        return _TOK_ILLEGAL

    def _scan_ident(self, r: str) -> bool:
        if not self.mode & _SCAN_IDENT:
            return False
        if self._scan_escaped(r):
            self.skip()
        elif not self.accept(r, self.pos - self.start):
            return False
        while True:
            r = self.read()
            if r == _EOF:
                self.unread()
                break
            if self._scan_lbrack(r):
                self.unread()
                self.unread()
                break
            if self._scan_escaped(r):
                self.skip()
                continue
            if not self.accept(r, self.pos - self.start):
                self.unread()
                break
        return True

    def _scan_lbrack(self, r: str) -> bool:
        if not self.mode & _SCAN_LBRACK:
            return False
        if r == "$":
            if self.read() == "{":
                return True
            self.unread()
        return False

    def _scan_rbrack(self, r: str) -> bool:
        return bool(self.mode & _SCAN_RBRACK) and r == "}"

    def _scan_escaped(self, r: str) -> bool:
        if not self.mode & _SCAN_ESCAPE:
            return False
        if r == "$" and self.escape_chars & _ESC_DOLLAR and self.peek() == "$":
            return True
        return r == "\\" and bool(self.escape_chars & _ESC_BACKSLASH) and self.peek() in ("/", "\\")


# --- parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = _Scanner(text)

    def parse_any(self) -> list[_Node]:
        nodes: list[_Node] = []
        s = self.s
        while True:
            s.accept = _accept_rune
            s.mode = _SCAN_IDENT | _SCAN_LBRACK | _SCAN_ESCAPE
            s.escape_chars = _ESC_DOLLAR
            token = s.scan()
            if token == _TOK_IDENT:
                nodes.append(_Text(s.string()))
            elif token == _TOK_EOF:
                return nodes
            elif token == _TOK_LBRACK:
                nodes.append(self.parse_func())
            else:
                raise SubstitutionError(BAD_SUBSTITUTION)

    def parse_func(self) -> _Node:
        s = self.s
        s.escape_chars = _ESC_ALL
        if s.peek() == "#":
            return self._parse_len_func()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(PARSE_VARIABLE_NAME)
        name = s.string()
        nxt = s.peek()
        if nxt == ":":
            return self._parse_default_or_substr(name)
        if nxt == "=":
            return self._parse_default_func(name)
        if nxt in (",", "^"):
            return self._parse_casing_func(name)
        if nxt == "/":
            return self._parse_replace_func(name)
        if nxt == "#":
            return self._parse_remove_func(name, _accept_hash_func)
        if nxt == "%":
            return self._parse_remove_func(name, _accept_percent_func)
        s.accept = _accept_ident
        s.mode = _SCAN_RBRACK
        if s.scan() == _TOK_RBRACK:
            return _Func(param=name)
        raise SubstitutionError(MISSING_CLOSING_BRACE)

    def _parse_param(self, accept: _Accept, mode: int) -> _Node:
        s = self.s
        s.accept = accept
        s.mode = mode | _SCAN_LBRACK
        token = s.scan()
        if token == _TOK_LBRACK:
            return self.parse_func()
        if token in (_TOK_IDENT, _TOK_RBRACK):
            return _Text(s.string())
        raise SubstitutionError(PARSE_FUNC_SUBSTITUTION)

    def _parse_default_or_substr(self, name: str) -> _Node:
        s = self.s
        s.read()
        r = s.peek()
        s.unread()
        if r in ("=", "-", "?", "+") and r != _EOF:
            return self._parse_default_func(name)
        return self._parse_substr_func(name)

    def _parse_substr_func(self, name: str) -> _Node:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_one_colon
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.name = s.string()
        node.args.append(self._parse_param(_reject_colon_close, _SCAN_IDENT))
        s.accept = _accept_colon
        s.mode = _SCAN_IDENT | _SCAN_RBRACK
        token = s.scan()
        if token == _TOK_RBRACK:
            return node
        if token != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.args.append(self._parse_param(_accept_not_closing, _SCAN_IDENT))
        self._consume_rbrack()
        return node

    def _parse_remove_func(self, name: str, accept: _Accept) -> _Node:
        s = self.s
        node = _Func(param=name)
        s.accept = accept
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.name = s.string()
        node.args.append(self._parse_param(_accept_not_closing, _SCAN_IDENT))
        self._consume_rbrack()
        return node

    def _parse_replace_func(self, name: str) -> _Node:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_replace_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.name = s.string()
        if s.peek() == "/":
            node.args.append(_Text(""))
        else:
            node.args.append(self._parse_param(_accept_not_slash, _SCAN_IDENT | _SCAN_ESCAPE))
        s.accept = _accept_slash
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        if s.peek() == "}":
            self._consume_rbrack()
            return node
        node.args.append(self._parse_param(_accept_not_closing, _SCAN_IDENT | _SCAN_ESCAPE))
        self._consume_rbrack()
        return node

    def _parse_default_func(self, name: str) -> _Node:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_one_equal if s.peek() == "=" else _accept_default_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(PARSE_DEFAULT_FUNCTION)
        node.name = s.string()
        while True:
            if s.peek() == "}":
                self._consume_rbrack()
                return node
            node.args.append(self._parse_param(_accept_not_closing, _SCAN_IDENT))

    def _parse_casing_func(self, name: str) -> _Node:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_casing_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.name = s.string()
        self._consume_rbrack()
        return node

    def _parse_len_func(self) -> _Node:
        s = self.s
        node = _Func()
        s.accept = _accept_one_hash
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.name = s.string()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError(BAD_SUBSTITUTION)
        node.param = s.string()
        self._consume_rbrack()
        return node

    def _consume_rbrack(self) -> None:
        self.s.mode = _SCAN_RBRACK
        if self.s.scan() != _TOK_RBRACK:
            raise SubstitutionError(BAD_SUBSTITUTION)


def parse(text: str) -> list[_Node]:
    """The nodes of ``text``; raises :class:`SubstitutionError` on a malformed expression."""
    return _Parser(text).parse_any()


# --- evaluation ------------------------------------------------------------------------------------

Mapping = Callable[[str], "tuple[str, bool]"]
_DEFAULT_OPS = frozenset({"-", "+", "=", "?", ":-", ":+", ":=", ":?"})


def evaluate(text: str, mapping: Mapping) -> str:
    """``text`` with every ``${...}`` expression replaced; ``mapping(name)`` → ``(value, defined)``.

    A mapping that reports ``defined=False`` makes a bare use of that variable an error
    (:class:`VariableNotSet`): that is strict mode. A lenient caller returns ``("", True)``.
    """
    if "$" not in text:  # nothing can change: only "${" and "$$" are special
        return text
    out: list[str] = []
    for node in parse(text):
        _eval(node, mapping, out)
    return "".join(out)


def _eval(node: _Node, mapping: Mapping, out: list[str]) -> None:
    if isinstance(node, _Text):
        out.append(node.value)
    elif isinstance(node, _List):
        for child in node.nodes:
            _eval(child, mapping, out)
    else:
        args: list[str] = []
        for arg in node.args:
            buf: list[str] = []
            _eval(arg, mapping, buf)
            args.append("".join(buf))
        value, defined = mapping(node.param)
        if not defined and node.name not in _DEFAULT_OPS:
            raise VariableNotSet(node.param)
        out.append(_FUNCS.get(node.name, _to_default)(value, args, node.name))


def _to_default(s: str, args: list[str], name: str) -> str:
    if not s and args:
        return "".join(args)
    return s


def _to_len(s: str, args: list[str], name: str) -> str:
    if not args and name == "#":
        return str(len(s))
    return _trim_shortest_prefix(s, args, name)


def _to_substr(s: str, args: list[str], name: str) -> str:
    if not args:
        return s
    try:
        pos = _go_atoi(args[0])
    except ValueError:
        return s
    if pos < 0:
        pos = max(len(s) + pos, 0)
    if len(args) == 1:
        return s[pos:] if pos < len(s) else ""
    try:
        length = _go_atoi(args[1])
    except ValueError:
        return s
    if length < 0:
        end = len(s) + length
        return "" if end < pos else s[pos:end]
    if pos + length >= len(s):
        return s[pos:] if pos < len(s) else ""
    return s[pos : pos + length]


_ATOI = re.compile(r"[+-]?[0-9]+")


def _go_atoi(text: str) -> int:
    if not _ATOI.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _replace(count: int) -> Callable[[str, list[str], str], str]:
    def run(s: str, args: list[str], name: str) -> str:
        if not args:
            return s
        new = args[1] if len(args) > 1 else ""
        return s.replace(args[0], new, count) if args[0] else _go_replace_empty(s, new, count)

    return run


def _go_replace_empty(s: str, new: str, count: int) -> str:
    # Go's strings.Replace with an empty old string inserts `new` before every rune (and at the end).
    if count < 0:
        return new + new.join(s) + new if s else new
    return new + s


def _replace_prefix(s: str, args: list[str], name: str) -> str:
    if len(args) != 2:
        return s
    return args[1] + s[len(args[0]) :] if s.startswith(args[0]) else s


def _replace_suffix(s: str, args: list[str], name: str) -> str:
    if len(args) != 2:
        return s
    return s[: len(s) - len(args[0])] + args[1] if s.endswith(args[0]) else s


def _glob(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern)


def _trim_shortest(s: str, pattern: str) -> str:
    shortest = ""
    for i in range(len(s)):
        candidate = s[: len(s) - i]
        if _glob(pattern, candidate):
            shortest = candidate
    return s[len(shortest) :] if shortest else s


def _trim_longest(s: str, pattern: str) -> str:
    for i in range(len(s)):
        candidate = s[: len(s) - i]
        if _glob(pattern, candidate):
            return s[len(candidate) :]
    return s


def _trim_shortest_prefix(s: str, args: list[str], name: str) -> str:
    return _trim_shortest(s, args[0]) if args else s


def _trim_longest_prefix(s: str, args: list[str], name: str) -> str:
    return _trim_longest(s, args[0]) if args else s


def _trim_shortest_suffix(s: str, args: list[str], name: str) -> str:
    return _trim_shortest(s[::-1], args[0][::-1])[::-1] if args else s


def _trim_longest_suffix(s: str, args: list[str], name: str) -> str:
    return _trim_longest(s[::-1], args[0][::-1])[::-1] if args else s


def _lower_first(s: str, args: list[str], name: str) -> str:
    return s[:1].lower() + s[1:]


def _upper_first(s: str, args: list[str], name: str) -> str:
    return s[:1].upper() + s[1:]


_FUNCS: dict[str, Callable[[str, list[str], str], str]] = {
    ",": _lower_first,
    ",,": lambda s, a, n: s.lower(),
    "^": _upper_first,
    "^^": lambda s, a, n: s.upper(),
    "#": _to_len,
    "##": _trim_longest_prefix,
    "%": _trim_shortest_suffix,
    "%%": _trim_longest_suffix,
    ":": _to_substr,
    "/#": _replace_prefix,
    "/%": _replace_suffix,
    "/": _replace(1),
    "//": _replace(-1),
}
