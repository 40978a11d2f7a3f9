"""A small, safe renderer for the subset of Go `text/template` that Flux commit message templates use.

Supported: text with `{{ }}` actions and `{{-`/`-}}` trimming, comments `{{/* */}}`, field chains
(`.AutomationObject.Name`, `$change.NewValue`, methods without arguments such as
`.Changed.Changes`), variables (`$x := …`, `$x = …`, `$`), string/number/bool literals, pipelines
with `|`, parentheses, `if`/`else if`/`else`, `range` (lists and maps, sorted keys, with one or
two variables, `else`, `break`/`continue`), `with`, and the functions in `FUNCTIONS` (Go's
builtins plus a few Sprig string helpers). Anything else is a `TemplateError` naming the
construct — never executed. Only exported (capitalised) fields of the data are reachable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FUNCTIONS", "TemplateError", "check", "render", "uses_field"]

MAX_OUTPUT = 1 << 20


class TemplateError(ValueError):
    """The template cannot be parsed or executed; the message names the construct."""


# ---------------------------------------------------------------- lexing

_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
    |(?P<num>-?\d+(?:\.\d+)?)
    |(?P<var>\$[A-Za-z0-9_]*)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>:=|=|\||\(|\)|,)
    )""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected {src[pos:].strip()[:20]!r} in action")
        kind = m.lastgroup or ""
        text = m.group(kind)
        # `$x.Field` is a variable followed by a field chain.
        follows = bool(out) and (out[-1].kind == "var" or (out[-1].kind == "op" and out[-1].text == ")"))
        if kind == "field" and follows and src[m.start()] == ".":
            out.append(_Tok("chain", text))
        else:
            out.append(_Tok(kind, text))
        pos = m.end()
    return out


# ---------------------------------------------------------------- parse tree


@dataclass
class _Operand:
    kind: str  # str | num | var | field | ident | bool | nil | pipe
    value: Any
    chain: list[str] = field(default_factory=list)


@dataclass
class _Command:
    args: list[_Operand]


@dataclass
class _Pipeline:
    decl: list[str]
    assign: bool
    commands: list[_Command]


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipeline


@dataclass
class _Block:
    kind: str  # if | range | with
    pipe: _Pipeline
    body: list[Any]
    orelse: list[Any]


@dataclass
class _Loop:
    kind: str  # break | continue


_KEYWORDS = {"if", "range", "with", "else", "end", "break", "continue", "define", "template", "block"}


def _parse_pipeline(toks: list[_Tok], allow_decl: bool = True) -> _Pipeline:
    decl: list[str] = []
    assign = False
    if allow_decl:
        # `$a := …`, `$a, $b := …`, `$a = …`
        i = 0
        names: list[str] = []
        while i < len(toks) and toks[i].kind == "var":
            names.append(toks[i].text)
            if i + 1 < len(toks) and toks[i + 1].kind == "op" and toks[i + 1].text == ",":
                i += 2
                continue
            break
        if names and len(toks) > i + 1 and toks[i + 1].kind == "op" and toks[i + 1].text in (":=", "="):
            decl, assign = names, toks[i + 1].text == "="
            toks = toks[i + 2 :]
    commands: list[_Command] = []
    pos = 0

    def operand() -> _Operand:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok.kind == "op" and tok.text == "(":
            depth, start = 1, pos
            while pos < len(toks) and depth:
                if toks[pos].kind == "op" and toks[pos].text in "()":
                    depth += 1 if toks[pos].text == "(" else -1
                pos += 1
            if depth:
                raise TemplateError("unclosed parenthesis")
            op = _Operand("pipe", _parse_pipeline(toks[start : pos - 1], allow_decl=False))
        elif tok.kind == "str":
            op = _Operand("str", _unquote(tok.text))
        elif tok.kind == "num":
            op = _Operand("num", float(tok.text) if "." in tok.text else int(tok.text))
        elif tok.kind == "var":
            op = _Operand("var", tok.text)
        elif tok.kind == "field":
            op = _Operand("field", None, [] if tok.text == "." else tok.text[1:].split("."))
        elif tok.kind == "ident":
            if tok.text in ("true", "false"):
                op = _Operand("bool", tok.text == "true")
            elif tok.text == "nil":
                op = _Operand("nil", None)
            elif tok.text in _KEYWORDS:
                raise TemplateError(f"unsupported use of {tok.text!r}")
            else:
                op = _Operand("ident", tok.text)
        else:
            raise TemplateError(f"unexpected {tok.text!r}")
        if pos < len(toks) and toks[pos].kind == "chain":
            op.chain = toks[pos].text[1:].split(".")
            pos += 1
        return op

    args: list[_Operand] = []
    while pos < len(toks):
        tok = toks[pos]
        if tok.kind == "op" and tok.text == "|":
            if not args:
                raise TemplateError("missing command before '|'")
            commands.append(_Command(args))
            args = []
            pos += 1
            continue
        if tok.kind == "op" and tok.text in (":=", "=", ",", ")"):
            raise TemplateError(f"unexpected {tok.text!r}")
        args.append(operand())
    if not args:
        raise TemplateError("missing value in action")
    commands.append(_Command(args))
    return _Pipeline(decl, assign, commands)


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return bytes(text[1:-1], "utf-8").decode("unicode_escape")


def _parse(src: str) -> list[Any]:
    # Split into text and actions, applying trim markers.
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = src[pos:]
    if "{{" in tail:
        raise TemplateError("unclosed action")
    parts.append(("text", tail.lstrip(" \t\r\n") if trim_next else tail))

    root: list[Any] = []
    stack: list[tuple[_Block | None, list[Any]]] = [(None, root)]
    # Each open block: (block, list currently filled); `else if` nests a block in orelse.
    opened: list[tuple[_Block, int]] = []  # block, number of chained `else if` blocks to close

    for kind, body in parts:
        current = stack[-1][1]
        if kind == "text":
            if body:
                current.append(_Text(body))
            continue
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError("unclosed comment")
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word) :].strip()
        if word in ("if", "range", "with"):
            block = _Block(word, _parse_pipeline(_tokens(rest)), [], [])
            current.append(block)
            stack.append((block, block.body))
            opened.append((block, 0))
        elif word == "else":
            if len(stack) == 1:
                raise TemplateError("unexpected {{else}}")
            enclosing = stack.pop()[0]
            assert enclosing is not None
            block = enclosing
            if rest.startswith(("if ", "with ")):
                sub_word, sub_rest = rest.split(None, 1)
                sub = _Block(sub_word, _parse_pipeline(_tokens(sub_rest)), [], [])
                block.orelse.append(sub)
                stack.append((block, block.orelse))
                stack.append((sub, sub.body))
                top, chained = opened[-1]
                opened[-1] = (top, chained + 1)
            elif rest:
                raise TemplateError(f"unsupported {{{{else {rest}}}}}")
            else:
                stack.append((block, block.orelse))
        elif word == "end":
            if rest or len(stack) == 1:
                raise TemplateError("unexpected {{end}}")
            _, chained = opened.pop()
            for _ in range(1 + chained):
                stack.pop()
        elif word in ("break", "continue"):
            current.append(_Loop(word))
        elif word in ("define", "template", "block"):
            raise TemplateError(f"unsupported action {{{{{word}}}}}")
        elif not body:
            raise TemplateError("missing value in action")
        else:
            current.append(_Action(_parse_pipeline(_tokens(body))))
    if len(stack) != 1:
        raise TemplateError(f"unclosed {{{{{opened[-1][0].kind}}}}} action")
    return root


# ---------------------------------------------------------------- evaluation


class _NoValue:
    def __str__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _truth(value: Any) -> bool:
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _field(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, NO_VALUE)
    if not name[:1].isupper():
        raise TemplateError(f"can't evaluate field {name}: only exported (capitalised) fields")
    if value is None or value is NO_VALUE or isinstance(value, str | int | float | bool | list | tuple):
        raise TemplateError(f"can't evaluate field {name} in type {_type_name(value)}")
    attr = getattr(type(value), name, None)
    if (
        attr is None
        and name not in getattr(value, "__dict__", {})
        and name not in getattr(type(value), "__dataclass_fields__", {})
    ):
        raise TemplateError(f"can't evaluate field {name} in type {_type_name(value)}")
    got = getattr(value, name)
    return got() if callable(got) else got


def _type_name(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "nil"
    return {str: "string", int: "int", float: "float64", bool: "bool", list: "slice", dict: "map"}.get(
        type(value), type(value).__name__
    )


def format_value(value: Any) -> str:
    """How Go's fmt `%v` prints template data."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{format_value(k)}:{format_value(value[k])}" for k in _sorted(value)) + "]"
    return str(value)


def _sorted(mapping: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(mapping)
    except TypeError:
        return list(mapping)


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        try:
            arg = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb == "q":
            return '"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if verb == "d":
            return str(int(arg))
        return format_value(arg)

    return re.sub(r"%([-+# 0-9.]*)([vsdqt%])", sub, fmt)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, NO_VALUE)
        elif isinstance(value, list | tuple | str):
            value = value[int(key)]
        else:
            raise TemplateError(f"can't index item of type {_type_name(value)}")
    return value


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *bs: Any) -> bool:
        return any(op(a, b) for b in bs) if op is _eq else all(op(a, b) for b in bs)

    return compare


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def _and(*args: Any) -> Any:
    """Go's `and`: the first falsy argument, else the last."""
    for arg in args:
        if not _truth(arg):
            return arg
    return args[-1] if args else None


def _or(*args: Any) -> Any:
    """Go's `or`: the first truthy argument, else the last."""
    for arg in args:
        if _truth(arg):
            return arg
    return args[-1] if args else None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go text/template builtins
    "len": len,
    "index": _index,
    "print": _sprint,
    "println": lambda *a: " ".join(format_value(x) for x in a) + "\n",
    "printf": _printf,
    "eq": _cmp(_eq),
    "ne": _cmp(lambda a, b: a != b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "not": lambda v: not _truth(v),
    "and": _and,
    "or": _or,
    # Sprig string helpers
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "trim": lambda s: str(s).strip(),
    "trimPrefix": lambda p, s: str(s).removeprefix(p),
    "trimSuffix": lambda p, s: str(s).removesuffix(p),
    "replace": lambda old, new, s: str(s).replace(old, new),
    "contains": lambda sub, s: sub in str(s),
    "hasPrefix": lambda p, s: str(s).startswith(p),
    "hasSuffix": lambda p, s: str(s).endswith(p),
    "quote": lambda *a: " ".join('"' + format_value(x).replace('"', '\\"') + '"' for x in a),
    "join": lambda sep, items: sep.join(format_value(x) for x in items),
    "split": lambda sep, s: {f"_{i}": p for i, p in enumerate(str(s).split(sep))},
    "default": lambda d, *v: v[0] if v and _truth(v[0]) else d,
    "toString": format_value,
    "uniq": lambda items: list(dict.fromkeys(items)),
    "splitList": lambda sep, s: str(s).split(sep),
    "first": lambda items: items[0] if items else None,
    "last": lambda items: items[-1] if items else None,
    "trunc": lambda n, s: str(s)[:n] if n >= 0 else str(s)[n:],
    "sortAlpha": lambda items: sorted(format_value(x) for x in items),
}


class _Scope:
    def __init__(self, root: Any) -> None:
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable: {name}")

    def set(self, name: str, value: Any) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")


def _eval_pipe(pipe: _Pipeline, dot: Any, scope: _Scope) -> Any:
    value: Any = NO_VALUE
    piped = False
    for command in pipe.commands:
        value = _eval_command(command, dot, scope, value if piped else None, piped)
        piped = True
    if pipe.decl:
        if pipe.assign:
            scope.set(pipe.decl[0], value)
        else:
            scope.frames[-1][pipe.decl[0]] = value
    return value


def _eval_operand(op: _Operand, dot: Any, scope: _Scope) -> Any:
    if op.kind in ("str", "num", "bool", "nil"):
        value = op.value
    elif op.kind == "var":
        value = scope.get(op.value)
    elif op.kind == "field":
        value = dot
        for name in op.chain:
            value = _field(value, name)
        return value
    elif op.kind == "pipe":
        value = _eval_pipe(op.value, dot, scope)
    elif op.kind == "ident":
        func = FUNCTIONS.get(op.value)
        if func is None:
            raise TemplateError(f'function "{op.value}" not defined')
        value = func()
    else:
        raise TemplateError(f"unsupported operand {op.kind}")
    for name in op.chain:
        value = _field(value, name)
    return value


def _eval_command(command: _Command, dot: Any, scope: _Scope, piped: Any, has_piped: bool) -> Any:
    first = command.args[0]
    if first.kind == "ident" and not first.chain:
        func = FUNCTIONS.get(first.value)
        if func is None:
            raise TemplateError(f'function "{first.value}" not defined')
        args = [_eval_operand(a, dot, scope) for a in command.args[1:]]
        if has_piped:
            args.append(piped)
        try:
            return func(*args)
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(f"error calling {first.value}: {exc}") from None
    if len(command.args) > 1 or has_piped:
        raise TemplateError("can't give argument to non-function")
    return _eval_operand(first, dot, scope)


def _items(value: Any) -> list[tuple[Any, Any]]:
    if value is None or value is NO_VALUE:
        return []
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in _sorted(value)]
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return [(i, i) for i in range(value)]
    raise TemplateError(f"range can't iterate over {format_value(value)}")


def _exec(nodes: Sequence[Any], dot: Any, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Action):
            value = _eval_pipe(node.pipe, dot, scope)
            if not node.pipe.decl:
                out.append(format_value(value))
        elif isinstance(node, _Loop):
            raise _Break() if node.kind == "break" else _Continue()
        elif isinstance(node, _Block):
            _exec_block(node, dot, scope, out)
        if sum(len(s) for s in out) > MAX_OUTPUT:
            raise TemplateError("output too large")


def _exec_block(node: _Block, dot: Any, scope: _Scope, out: list[str]) -> None:
    scope.frames.append({})
    try:
        if node.kind == "range":
            decl = node.pipe.decl
            pipe = _Pipeline([], False, node.pipe.commands)
            items = _items(_eval_pipe(pipe, dot, scope))
            if not items:
                _exec(node.orelse, dot, scope, out)
                return
            for key, elem in items:
                frame: dict[str, Any] = {}
                if len(decl) == 1:
                    frame[decl[0]] = elem
                elif len(decl) == 2:
                    frame[decl[0]], frame[decl[1]] = key, elem
                elif len(decl) > 2:
                    raise TemplateError("too many declarations in range")
                scope.frames.append(frame)
                try:
                    _exec(node.body, elem, scope, out)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    scope.frames.pop()
            return
        value = _eval_pipe(node.pipe, dot, scope)
        if _truth(value):
            _exec(node.body, value if node.kind == "with" else dot, scope, out)
        else:
            _exec(node.orelse, dot, scope, out)
    finally:
        scope.frames.pop()


def render(template: str, data: Any) -> str:
    """Render `template` against `data`; raises TemplateError for anything outside the subset."""
    nodes = _parse(template)
    out: list[str] = []
    try:
        _exec(nodes, data, _Scope(data), out)
    except (_Break, _Continue):
        raise TemplateError("{{break}} or {{continue}} outside {{range}}") from None
    except RecursionError:
        raise TemplateError("template nests too deeply") from None
    return "".join(out)


def uses_field(template: str, name: str) -> bool:
    """Whether any action of `template` reads the top-level field `name` (e.g. `Updated`)."""
    pattern = re.compile(r"(?<![A-Za-z0-9_])\." + re.escape(name) + r"(?![A-Za-z0-9_])")
    for m in _ACTION.finditer(template):
        body = m.group(2)
        if body.strip().startswith("/*"):
            continue
        if pattern.search(body):
            return True
    return False


def check(template: str) -> None:
    """Parse `template` without running it; raises TemplateError for anything outside the subset."""
    _parse(template)
