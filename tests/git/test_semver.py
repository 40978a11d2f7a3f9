"""Masterminds/semver v3 constraint semantics, as Flux uses them for spec.ref.semver."""

from __future__ import annotations

import pytest

from libs.git.semver import Constraint, InvalidConstraint, Version, highest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        ("=1.2.3", "v1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("!=1.2.3", "1.2.4", True),
        (">1.2.3", "1.2.4", True),
        ("<1.2.3", "1.2.2", True),
        (">= 1.2.3", "1.2.3", True),
        ("=>1.2.3", "1.2.2", False),
        ("<=1.2.3", "1.2.3", True),
        ("=<1.2.3", "1.2.4", False),
        ("^1.0", "1.4.0", True),
        ("^1.0", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.4", False),
        ("^0", "0.9.9", True),
        ("~1.2", "1.2.9", True),
        ("~1.2", "1.3.0", False),
        ("~1", "1.9.0", True),
        ("~>1.2.3", "1.2.5", True),
        ("~1.2.3", "1.3.0", False),
        ("1.x", "1.9.0", True),
        ("1.2.x", "1.3.0", False),
        ("1.2", "1.2.7", True),
        ("!=1.2.x", "1.2.4", False),
        ("!=1.2.x", "1.3.0", True),
        ("> 1.x", "2.0.0", True),
        ("> 1.x", "1.9.0", False),
        ("<=2.x", "2.9.0", True),
        ("<=2.x", "3.0.0", False),
        ("<1.x", "0.9.0", True),
        ("*", "1.0.0", True),
        ("*", "1.0.0-rc1", False),
        (">=1.0.0-0", "1.0.0-rc1", True),
        (">=1.0.0-rc.2", "1.0.0-rc.10", True),
        (">=1.2.0 <2.0.0 || ~3.1", "3.1.5", True),
        (">=1.2.0, <2.0.0", "2.0.0", False),
        ("1.2 - 1.4.5", "1.4.6", False),
        ("1.2 - 1.4.5", "1.2.0", True),
        ("1.2 - 1.4", "1.4.9", True),
    ],
)
def test_constraints_match_like_masterminds(constraint: str, version: str, expected: bool) -> None:
    assert Constraint.parse(constraint).check(Version.parse(version)) is expected


@pytest.mark.parametrize("bad", ["", "||", ">=a.b", "1.2.3.4", "1.x.3"])
def test_invalid_constraints_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidConstraint):
        Constraint.parse(bad)


def test_ordering_follows_semver_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0"]
    assert sorted(ordered, key=Version.parse) == ordered
    assert Version.parse("1.0.0+build.1") == Version.parse("1.0.0")


def test_highest_skips_non_versions_and_prereleases() -> None:
    tags = ["v1.0.0", "v1.1.0", "latest", "v2.0.0-rc1", "v0.9.0"]
    assert highest(tags, ">=1.0") == "v1.1.0"
    assert highest(tags, ">=2.0.0-0") == "v2.0.0-rc1"
    assert highest(tags, ">=3") is None
