"""ImagePolicy's tag selection, as Flux's image-reflector-controller does it (internal/policy).

- `filterTags.pattern` keeps tags the regular expression matches (anywhere in the tag, as Go's
  `MatchString`); `extract` is a Go `Regexp.Expand` template (`$1`, `$ts`, `${ts}`, `$$`) whose
  value is compared instead of the tag; the winner maps back to its original tag.
- `semver.range`: Masterminds constraint (libs.git.semver); tags that are not versions are skipped;
  the highest satisfying version wins (the first listed on a tie, as Flux).
- `alphabetical`: `asc` picks the last tag in ascending order, `desc` the first.
- `numerical`: every candidate must parse as a float (else an error naming it); `asc` picks the highest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from libs.common.api.image.imagepolicy import ImagePolicyChoice, TagFilter
from libs.git.semver import Constraint, InvalidConstraint, InvalidVersion, Version

NO_VERSION = "unable to determine latest version from provided list"
EMPTY_LIST = "version list argument cannot be empty"


class InvalidPolicy(ValueError):
    """The spec cannot select anything (bad range, bad regex): stalls the policy."""


class NoLatest(ValueError):
    """No tag satisfies the policy."""


_NAMED_GROUP = re.compile(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>")
_TEMPLATE = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def compile_go_regexp(pattern: str) -> re.Pattern[str]:
    """A Go RE2 pattern as a Python pattern (`(?<name>` becomes `(?P<name>`)."""
    try:
        return re.compile(_NAMED_GROUP.sub(r"(?P<\1>", pattern))
    except re.error as exc:
        raise InvalidPolicy(f"invalid regular expression pattern '{pattern}': {exc}") from None


def expand(template: str, match: re.Match[str]) -> str:
    """Go's `Regexp.Expand`: `$name`/`${name}` is the group's text, unknown groups are empty."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:  # unknown group name or number
            return ""
        return group or ""

    return _TEMPLATE.sub(one, template)


@dataclass(frozen=True)
class Filtered:
    """Candidates to compare and, for each, the tag it came from."""

    values: list[str]
    original: dict[str, str]


def apply_filter(tags: Sequence[str], spec: TagFilter | None) -> Filtered:
    if spec is None or not (spec.pattern or ""):
        return Filtered(list(tags), {t: t for t in tags})
    regex = compile_go_regexp(spec.pattern or "")
    values: list[str] = []
    original: dict[str, str] = {}
    for tag in tags:
        match = regex.search(tag)
        if match is None:
            continue
        value = expand(spec.extract, match) if spec.extract else tag
        if value not in original:
            values.append(value)
        original[value] = tag  # the last tag with that value wins, as Flux's map does
    return Filtered(values, original)


def _semver(values: Sequence[str], rng: str) -> str:
    try:
        constraint = Constraint.parse(rng)
    except InvalidConstraint as exc:
        raise InvalidPolicy(f"invalid policy: semver parse error: {exc}") from None
    if not values:
        raise NoLatest(EMPTY_LIST)
    best: tuple[Version, str] | None = None
    for value in values:
        try:
            version = Version.parse(value)
        except InvalidVersion:
            continue
        if constraint.check(version) and (best is None or version > best[0]):
            best = (version, value)
    if best is None:
        raise NoLatest(NO_VERSION)
    return best[1]


def _alphabetical(values: Sequence[str], order: str) -> str:
    if not values:
        raise NoLatest(EMPTY_LIST)
    ordered = sorted(values)
    return ordered[-1] if order == "asc" else ordered[0]


def _numerical(values: Sequence[str], order: str) -> str:
    if not values:
        raise NoLatest(EMPTY_LIST)
    best: tuple[float, str] | None = None
    for value in values:
        try:
            number = float(value)
        except ValueError:
            raise NoLatest(f"failed to parse invalid numeric value '{value}'") from None
        if math.isnan(number):
            raise NoLatest(f"failed to parse invalid numeric value '{value}'")
        if best is None or (number > best[0] if order == "asc" else number < best[0]):
            best = (number, value)
    assert best is not None
    return best[1]


def check_policy(choice: ImagePolicyChoice) -> None:
    """InvalidPolicy unless exactly one policy is given and it is well formed."""
    given = [p for p in (choice.semver, choice.alphabetical, choice.numerical) if p is not None]
    if len(given) != 1:
        raise InvalidPolicy("invalid policy: exactly one of semver, alphabetical or numerical must be set")
    if choice.semver is not None:
        try:
            Constraint.parse(choice.semver.range)
        except InvalidConstraint as exc:
            raise InvalidPolicy(f"invalid policy: semver parse error: {exc}") from None


def latest(tags: Sequence[str], choice: ImagePolicyChoice, filter_tags: TagFilter | None = None) -> str:
    """The tag the policy selects; InvalidPolicy or NoLatest (with Flux's messages) otherwise."""
    check_policy(choice)
    filtered = apply_filter(tags, filter_tags)
    if choice.semver is not None:
        value = _semver(filtered.values, choice.semver.range)
    elif choice.alphabetical is not None:
        value = _alphabetical(filtered.values, choice.alphabetical.order)
    else:
        assert choice.numerical is not None
        value = _numerical(filtered.values, choice.numerical.order)
    return filtered.original[value]
