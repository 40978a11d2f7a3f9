"""A small, safe subset of CEL (the Common Expression Language) for Flux's `healthCheckExprs`.

Flux evaluates expressions such as

    status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')
    status.phase == 'Running' && has(status.readyReplicas)

against an object, whose top-level fields (`metadata`, `spec`, `status` …) are the variables.
This module parses and evaluates that subset with no access to anything else:

- literals: integers, doubles, 'strings' / "strings" (with \\ escapes), true, false, null,
  lists `[a, b]`;
- field selection `a.b`, indexing `a[0]`, `a['key']`;
- operators `!`, unary `-`, `* / %`, `+ -`, `< <= > >= == !=`, `in`, `&&`, `||`, `? :`;
- functions `has(a.b)`, `size(x)` / `x.size()`, `int()`, `double()`, `string()`, `bool()`;
  string methods `startsWith`, `endsWith`, `contains`, `matches`, `lowerAscii`, `upperAscii`;
- macros on lists (and map keys): `all`, `exists`, `exists_one`, `filter`, `map`.

Errors follow CEL: selecting a missing field is an error (use `has()`), `&&`/`||` absorb an
error when the other side decides the result, and mixing types in comparisons is an error.
`parse` raises `CelError` for a syntax error; `evaluate` raises `CelError` for a runtime error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CelError", "Expression", "evaluate", "parse"]


class CelError(ValueError):
    """The expression is invalid, or evaluating it failed."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0x[0-9a-fA-F]+|\d+)(?P<unsigned>[uU])?
  | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%?:.,()\[\]])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
_RESERVED = frozenset({"true", "false", "null", "in"})
_MACROS = frozenset({"all", "exists", "exists_one", "filter", "map"})


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: Any
    pos: int


def _unescape(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise CelError(f"unsupported escape \\{nxt} at {pos + i}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise CelError(f"unexpected character {text[pos]!r} at {pos}")
        kind = m.lastgroup
        if m.group("num") is not None:
            raw = m.group("num")
            if raw.startswith("0x"):
                tokens.append(_Tok("lit", int(raw, 16), pos))
            elif any(c in raw for c in ".eE"):
                tokens.append(_Tok("lit", float(raw), pos))
            else:
                tokens.append(_Tok("lit", int(raw), pos))
        elif kind == "str":
            tokens.append(_Tok("lit", _unescape(m.group("str")[1:-1], pos), pos))
        elif kind == "ident":
            word = m.group("ident")
            if word == "true":
                tokens.append(_Tok("lit", True, pos))
            elif word == "false":
                tokens.append(_Tok("lit", False, pos))
            elif word == "null":
                tokens.append(_Tok("lit", None, pos))
            elif word == "in":
                tokens.append(_Tok("op", "in", pos))
            else:
                tokens.append(_Tok("ident", word, pos))
        elif kind == "op":
            tokens.append(_Tok("op", m.group("op"), pos))
        pos = m.end()
    tokens.append(_Tok("end", None, len(text)))
    return tokens


# AST: tuples ("lit", v) ("ident", name) ("select", operand, field) ("index", operand, key)
# ("call", name, target|None, args) ("macro", name, target, var, body) ("has", operand, field)
# ("unary", op, x) ("binary", op, a, b) ("and", a, b) ("or", a, b) ("cond", c, a, b) ("list", items)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, op: str) -> bool:
        tok = self.peek()
        if tok.kind == "op" and tok.value == op:
            self.i += 1
            return True
        return False

    def expect(self, op: str) -> None:
        tok = self.peek()
        if not self.accept(op):
            found = "end of expression" if tok.kind == "end" else repr(tok.value)
            raise CelError(f"expected {op!r} at {tok.pos}, found {found}")

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise CelError(f"unexpected {tok.value!r} at {tok.pos}")
        return node

    def expr(self) -> Node:
        cond = self.or_()
        if self.accept("?"):
            then = self.or_()
            self.expect(":")
            return ("cond", cond, then, self.expr())
        return cond

    def or_(self) -> Node:
        node = self.and_()
        while self.accept("||"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.relation()
        while self.accept("&&"):
            node = ("and", node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.addition()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value in ("<", "<=", ">", ">=", "==", "!=", "in"):
                self.i += 1
                node = ("binary", tok.value, node, self.addition())
            else:
                return node

    def addition(self) -> Node:
        node = self.multiplication()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value in ("+", "-"):
                self.i += 1
                node = ("binary", tok.value, node, self.multiplication())
            else:
                return node

    def multiplication(self) -> Node:
        node = self.unary()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value in ("*", "/", "%"):
                self.i += 1
                node = ("binary", tok.value, node, self.unary())
            else:
                return node

    def unary(self) -> Node:
        if self.accept("!"):
            return ("unary", "!", self.unary())
        if self.accept("-"):
            return ("unary", "-", self.unary())
        return self.member()

    def args(self) -> list[Node]:
        items: list[Node] = []
        if self.accept(")"):
            return items
        while True:
            items.append(self.expr())
            if self.accept(")"):
                return items
            self.expect(",")

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                tok = self.take()
                if tok.kind != "ident":
                    raise CelError(f"expected a field name at {tok.pos}")
                if self.accept("("):
                    node = self.method(node, tok.value, tok.pos)
                else:
                    node = ("select", node, tok.value)
            elif self.accept("["):
                key = self.expr()
                self.expect("]")
                node = ("index", node, key)
            else:
                return node

    def method(self, target: Node, name: str, pos: int) -> Node:
        if name in _MACROS:
            var = self.take()
            if var.kind != "ident":
                raise CelError(f"{name}() needs a variable name as its first argument (at {var.pos})")
            self.expect(",")
            body = self.expr()
            self.expect(")")
            return ("macro", name, target, var.value, body)
        return ("call", name, target, self.args())

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "lit":
            return ("lit", tok.value)
        if tok.kind == "ident":
            if self.accept("("):
                if tok.value == "has":
                    arg = self.expr()
                    self.expect(")")
                    if arg[0] != "select":
                        raise CelError(f"has() needs a field selection like has(a.b) (at {tok.pos})")
                    return ("has", arg[1], arg[2])
                return ("call", tok.value, None, self.args())
            return ("ident", tok.value)
        if tok.kind == "op" and tok.value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            items: list[Node] = []
            if not self.accept("]"):
                while True:
                    items.append(self.expr())
                    if self.accept("]"):
                        break
                    self.expect(",")
            return ("list", items)
        found = "end of expression" if tok.kind == "end" else repr(tok.value)
        raise CelError(f"unexpected {found} at {tok.pos}")


@dataclass(frozen=True)
class Expression:
    """A parsed expression; `evaluate(vars)` runs it."""

    source: str
    ast: Node

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        return _Eval(variables).eval(self.ast)


def parse(text: str) -> Expression:
    return Expression(text, _Parser(text).parse())


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    return parse(text).evaluate(variables)


def _type_name(value: Any) -> str:
    if value is None:
        return "null_type"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, Sequence):
        return "list"
    return type(value).__name__


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _numeric(a) and _numeric(b):
        return bool(a == b)
    if _type_name(a) != _type_name(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _size(value: Any) -> int:
    if isinstance(value, str | Mapping | list | tuple):
        return len(value)
    raise CelError(f"size() of {_type_name(value)}")


_STRING_METHODS = frozenset({"lowerAscii", "upperAscii", "startsWith", "endsWith", "contains", "matches"})


def _string_method(name: str, target: str, args: list[Any]) -> Any:
    if name not in _STRING_METHODS:
        raise CelError(f"unknown string method {name}()")
    if name == "lowerAscii" and not args:
        return target.lower()
    if name == "upperAscii" and not args:
        return target.upper()
    if len(args) != 1 or not isinstance(args[0], str):
        raise CelError(f"{name}() takes one string argument")
    arg = args[0]
    if name == "startsWith":
        return target.startswith(arg)
    if name == "endsWith":
        return target.endswith(arg)
    if name == "contains":
        return arg in target
    if name == "matches":
        try:
            return re.search(arg, target) is not None
        except re.error as exc:
            raise CelError(f"invalid regular expression {arg!r}: {exc}") from None
    raise CelError(f"unknown string method {name}()")


def _convert(name: str, value: Any) -> Any:
    try:
        if name == "int":
            if isinstance(value, str):
                return int(value, 10)
            return int(value)
        if name == "double":
            return float(value)
        if name == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
        if name == "bool":
            if isinstance(value, str) and value in ("true", "false"):
                return value == "true"
            if isinstance(value, bool):
                return value
    except (TypeError, ValueError) as exc:
        raise CelError(f"{name}({value!r}): {exc}") from None
    raise CelError(f"{name}() of {_type_name(value)}")


class _Eval:
    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.scopes: list[Mapping[str, Any]] = [variables]

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise CelError(f"undeclared reference to {name!r}")

    def bool_(self, node: Node) -> bool:
        value = self.eval(node)
        if not isinstance(value, bool):
            raise CelError(f"expected a bool, got {_type_name(value)}")
        return value

    def eval(self, node: Node) -> Any:
        handler: Callable[[Node], Any] = getattr(self, f"_{node[0]}")
        return handler(node)

    def _lit(self, node: Node) -> Any:
        return node[1]

    def _list(self, node: Node) -> Any:
        return [self.eval(item) for item in node[1]]

    def _ident(self, node: Node) -> Any:
        return self.lookup(node[1])

    def _select(self, node: Node) -> Any:
        operand = self.eval(node[1])
        if not isinstance(operand, Mapping):
            raise CelError(f"cannot select {node[2]!r} from {_type_name(operand)}")
        if node[2] not in operand:
            raise CelError(f"no such key: {node[2]}")
        return operand[node[2]]

    def _has(self, node: Node) -> Any:
        operand = self.eval(node[1])
        if not isinstance(operand, Mapping):
            raise CelError(f"has() on {_type_name(operand)}")
        return node[2] in operand

    def _index(self, node: Node) -> Any:
        operand, key = self.eval(node[1]), self.eval(node[2])
        if isinstance(operand, Mapping):
            if key not in operand:
                raise CelError(f"no such key: {key}")
            return operand[key]
        if isinstance(operand, list | tuple):
            if not _numeric(key) or int(key) != key:
                raise CelError(f"list index must be an int, got {_type_name(key)}")
            if not 0 <= int(key) < len(operand):
                raise CelError(f"index {key} out of range")
            return operand[int(key)]
        raise CelError(f"cannot index {_type_name(operand)}")

    def _call(self, node: Node) -> Any:
        _, name, target_node, arg_nodes = node
        args = [self.eval(a) for a in arg_nodes]
        if target_node is None:
            if name == "size" and len(args) == 1:
                return _size(args[0])
            if name in ("int", "double", "string", "bool") and len(args) == 1:
                return _convert(name, args[0])
            if name == "dyn" and len(args) == 1:
                return args[0]
            raise CelError(f"unknown function {name}()")
        target = self.eval(target_node)
        if name == "size" and not args:
            return _size(target)
        if isinstance(target, str):
            return _string_method(name, target, args)
        raise CelError(f"unknown method {name}() on {_type_name(target)}")

    def _macro(self, node: Node) -> Any:
        _, name, target_node, var, body = node
        target = self.eval(target_node)
        if isinstance(target, Mapping):
            items: list[Any] = list(target.keys())
        elif isinstance(target, list | tuple):
            items = list(target)
        else:
            raise CelError(f"{name}() on {_type_name(target)}")
        results: list[Any] = []
        error: CelError | None = None
        for item in items:
            self.scopes.append({var: item})
            try:
                if name == "map":
                    results.append(self.eval(body))
                    continue
                try:
                    value = self.bool_(body)
                except CelError as exc:
                    if name in ("all", "exists"):
                        error = error or exc
                        continue
                    raise
                if name == "all" and not value:
                    return False
                if name == "exists" and value:
                    return True
                if value:
                    results.append(item)
            finally:
                self.scopes.pop()
        if name in ("all", "exists"):
            if error is not None:
                raise error
            return name == "all"
        if name == "exists_one":
            return len(results) == 1
        return results

    def _unary(self, node: Node) -> Any:
        if node[1] == "!":
            return not self.bool_(node[2])
        value = self.eval(node[2])
        if not _numeric(value):
            raise CelError(f"cannot negate {_type_name(value)}")
        return -value

    def _logic(self, node: Node, decisive: bool) -> bool:
        try:
            left: bool | CelError = self.bool_(node[1])
        except CelError as exc:
            left = exc
        if left is decisive:
            return decisive
        right = self.bool_(node[2])
        if right is decisive:
            return decisive
        if isinstance(left, CelError):
            raise left
        return not decisive

    def _and(self, node: Node) -> Any:
        return self._logic(node, False)

    def _or(self, node: Node) -> Any:
        return self._logic(node, True)

    def _cond(self, node: Node) -> Any:
        return self.eval(node[2]) if self.bool_(node[1]) else self.eval(node[3])

    def _binary(self, node: Node) -> Any:
        op = node[1]
        a, b = self.eval(node[2]), self.eval(node[3])
        if op == "==":
            return _equal(a, b)
        if op == "!=":
            return not _equal(a, b)
        if op == "in":
            if isinstance(b, Mapping):
                return a in b
            if isinstance(b, list | tuple):
                return any(_equal(a, x) for x in b)
            raise CelError(f"'in' on {_type_name(b)}")
        if op in ("<", "<=", ">", ">="):
            comparable = (_numeric(a) and _numeric(b)) or (
                _type_name(a) == _type_name(b) and isinstance(a, str | bool)
            )
            if not comparable:
                raise CelError(f"cannot compare {_type_name(a)} and {_type_name(b)}")
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if op == "+":
            if _numeric(a) and _numeric(b):
                return a + b
            if _type_name(a) == _type_name(b) and isinstance(a, str | list):
                return a + b
            raise CelError(f"cannot add {_type_name(a)} and {_type_name(b)}")
        if not (_numeric(a) and _numeric(b)):
            raise CelError(f"cannot apply {op} to {_type_name(a)} and {_type_name(b)}")
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0 and (op == "%" or (isinstance(a, int) and isinstance(b, int))):
            raise CelError("division by zero")
        if op == "/":
            if isinstance(a, int) and isinstance(b, int):
                return int(a / b)
            return a / b
        if isinstance(a, int) and isinstance(b, int):
            return int(a - b * int(a / b))
        raise CelError("% needs ints")
