"""A small Dockerfile reader: enough of the syntax (parser directives, comments, line
continuations, JSON and shell forms, flags) to check what the images are built from, since no
Docker engine runs here."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN …
    args: str  # the rest of the logical line, continuations joined
    line: int  # where it starts (1-based)

    def flags(self) -> dict[str, str]:
        """`--from=app --chown=1:1 a b` → {"from": "app", "chown": "1:1"}."""
        found: dict[str, str] = {}
        for word in self.args.split():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def operands(self) -> list[str]:
        """The arguments after the flags; JSON (exec) form when the text is a JSON array."""
        rest = self.args
        while rest.startswith("--"):
            rest = rest.split(None, 1)[1] if " " in rest else ""
        rest = rest.strip()
        if rest.startswith("["):
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        return shlex.split(rest)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order (comments and blank lines dropped)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue  # parser directives (# syntax=…) are comments here too
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are ignored, like Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = logical.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    if pending:
        raise ValueError("the file ends inside a continued line")
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    """Instructions grouped by FROM; `FROM image AS name` names a stage."""
    result: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.operands()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            result.append(Stage(words[0], name))
        elif not result:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {instruction.line}: {instruction.keyword} before the first FROM")
        else:
            result[-1].instructions.append(instruction)
    return result
