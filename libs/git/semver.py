"""Semantic versions and Masterminds/semver v3 constraints — the syntax Flux uses for
``GitRepository.spec.ref.semver`` (and ImagePolicy ``semver.range``).

    Constraint.parse(">=1.2.0 <2.0.0 || ~3.1").check(Version.parse("v1.4.2"))  # True
    highest(["v1.0.0", "v1.1.0", "latest"], "^1.0")                             # "v1.1.0"

Supported: ``=``, ``!=``, ``>``, ``<``, ``>=``/``=>``, ``<=``/``=<``, ``~``/``~>``, ``^``,
wildcards ``x``/``X``/``*`` and missing parts (``1.2`` = ``1.2.x``), hyphen ranges
``1.2 - 1.4.5``, ``,`` or spaces for AND, ``||`` for OR. As in Masterminds v3, a version with a
pre-release only satisfies a comparator that itself names a pre-release.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

__all__ = ["Constraint", "InvalidConstraint", "InvalidVersion", "Version", "highest"]

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*|\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<meta>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_OPS = ("!=", ">=", "=>", "<=", "=<", "~>", "=", ">", "<", "~", "^")
_WILD = ("x", "X", "*")


class InvalidVersion(ValueError):
    pass


class InvalidConstraint(ValueError):
    pass


def _prerelease_key(pre: str) -> tuple[tuple[int, int | str], ...]:
    key: list[tuple[int, int | str]] = []
    for ident in pre.split("."):
        key.append((0, int(ident)) if ident.isdigit() else (1, ident))
    return tuple(key)


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse like Masterminds ``NewVersion``: a ``v`` prefix and missing minor/patch are allowed."""
        m = _VERSION.match(text.strip())
        if m is None:
            raise InvalidVersion(f"invalid semantic version {text!r}")
        return cls(
            int(m["major"]),
            int(m["minor"] or 0),
            int(m["patch"] or 0),
            m["pre"] or "",
            m["meta"] or "",
            text,
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after all its pre-releases; build metadata does not count.
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            _prerelease_key(self.prerelease) if self.prerelease else (),
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: Version
    # How many leading parts were given (1 = "1", 2 = "1.2", 3 = "1.2.3"); fewer = wildcard.
    given: int

    def check(self, v: Version) -> bool:
        c = self.version
        if v.prerelease and not c.prerelease:
            return False
        op, given = self.op, self.given
        if op in ("", "="):
            return self._tilde(v) if given < 3 else v == c
        if op == "!=":
            return not self._tilde(v) if given < 3 else v != c
        if op == ">":
            if given == 1:
                return v.major > c.major
            if given == 2:
                return v.major > c.major or (v.major == c.major and v.minor > c.minor)
            return v > c
        if op == "<":
            return v < c
        if op == ">=":
            return v >= c
        if op == "<=":
            if given == 1:
                return v.major <= c.major
            if given == 2:
                return v.major < c.major or (v.major == c.major and v.minor <= c.minor)
            return v <= c
        if op == "~":
            return self._tilde(v)
        if op == "^":
            return self._caret(v)
        raise InvalidConstraint(f"unknown operator {op!r}")  # pragma: no cover - parse rejects it

    def _tilde(self, v: Version) -> bool:
        c = self.version
        if v < c:
            return False
        if (c.major, c.minor, c.patch) == (0, 0, 0) and self.given == 3:
            return True  # ~0.0.0 accepts everything, as in Masterminds
        if self.given == 1:
            return v.major == c.major
        return v.major == c.major and v.minor == c.minor

    def _caret(self, v: Version) -> bool:
        c = self.version
        if v < c:
            return False
        if c.major > 0 or self.given == 1:
            return v.major == c.major
        if c.minor > 0 or self.given == 2:
            return v.major == 0 and v.minor == c.minor
        return v.major == 0 and v.minor == 0 and v.patch == c.patch


def _parse_comparator(text: str) -> _Comparator:
    op = next((o for o in _OPS if text.startswith(o)), "")
    rest = text[len(op) :].strip()
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(op, op)
    if rest in _WILD or rest == "":
        if op in ("", "=", ">=", "~", "^"):
            return _Comparator(">=", Version(0, 0, 0), 3)
        raise InvalidConstraint(f"invalid constraint {text!r}")
    head, plus, meta = rest.partition("+")
    core, dash, pre = head.partition("-")
    parts = core.lstrip("v").split(".")
    if not 1 <= len(parts) <= 3:
        raise InvalidConstraint(f"invalid constraint {text!r}")
    given = len(parts)
    for i, part in enumerate(parts):
        if part in _WILD:
            if any(p not in _WILD for p in parts[i:]):
                raise InvalidConstraint(f"invalid constraint {text!r}")
            given = i
            break
        if not part.isdigit():
            raise InvalidConstraint(f"invalid constraint {text!r}")
    if given == 0:
        return _parse_comparator(op + "*")
    numbers = [int(p) for p in parts[:given]] + [0] * (3 - given)
    version = Version(numbers[0], numbers[1], numbers[2], pre if dash else "", meta if plus else "", rest)
    if dash and not pre:
        raise InvalidConstraint(f"invalid constraint {text!r}")
    return _Comparator(op, version, given)


_HYPHEN = re.compile(r"\s+-\s+")
_SPLIT_OPS = re.compile(r"(!=|>=|=>|<=|=<|~>|=|>|<|~|\^)\s+")


@dataclass(frozen=True)
class Constraint:
    """An OR of AND-groups of comparators."""

    groups: tuple[tuple[_Comparator, ...], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if not text.strip():
            raise InvalidConstraint("empty semver constraint")
        groups: list[tuple[_Comparator, ...]] = []
        for alternative in text.split("||"):
            alt = alternative.strip()
            if not alt:
                raise InvalidConstraint(f"invalid semver constraint {text!r}")
            comparators: list[_Comparator] = []
            # Hyphen ranges first ("1.2 - 1.4.5"), then operators glued to their versions.
            alt = _HYPHEN.sub(" HYPHEN ", alt)
            alt = _SPLIT_OPS.sub(r"\1", alt)
            tokens = [t for t in re.split(r"[\s,]+", alt) if t]
            i = 0
            while i < len(tokens):
                if i + 2 < len(tokens) and tokens[i + 1] == "HYPHEN":
                    low, high = _parse_comparator(tokens[i]), _parse_comparator(tokens[i + 2])
                    comparators.append(_Comparator(">=", low.version, 3))
                    comparators.append(_Comparator("<=", high.version, high.given))
                    i += 3
                    continue
                if tokens[i] == "HYPHEN":
                    raise InvalidConstraint(f"invalid semver constraint {text!r}")
                comparators.append(_parse_comparator(tokens[i]))
                i += 1
            groups.append(tuple(comparators))
        return cls(tuple(groups), text)

    def check(self, version: Version) -> bool:
        return any(all(c.check(version) for c in group) for group in self.groups)

    def __str__(self) -> str:
        return self.text


def highest(candidates: Iterable[str], constraint: str | Constraint) -> str | None:
    """The candidate (tag name) with the highest version satisfying ``constraint``; names that
    are not versions are skipped. Ties (``v1.0.0`` and ``1.0.0``) go to the lexically last name."""
    rule = constraint if isinstance(constraint, Constraint) else Constraint.parse(constraint)
    best: tuple[Version, str] | None = None
    for name in candidates:
        try:
            version = Version.parse(name)
        except InvalidVersion:
            continue
        if not rule.check(version):
            continue
        if best is None or (version, name) > best:
            best = (version, name)
    return best[1] if best else None
