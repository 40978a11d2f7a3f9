"""ImagePolicy tag selection tables, as Flux's image-reflector-controller selects (internal/policy)."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.api.image.imagepolicy import ImagePolicyChoice, TagFilter
from services.image_scan import policy

pytestmark = pytest.mark.unit


def choice(**spec: Any) -> ImagePolicyChoice:
    return ImagePolicyChoice.model_validate(spec)


SEMVER = [
    # (tags, range, expected)
    (["1.0.0", "1.2.3", "1.10.0", "2.0.0"], ">=1.0.0 <2.0.0", "1.10.0"),
    (["v1.0.0", "v1.1.0", "latest", "v2.0.0-rc.1"], "^1.0", "v1.1.0"),
    (["1.2.0", "1.2.9", "1.3.0"], "~1.2", "1.2.9"),
    (["1.2.0", "1.2.9", "1.3.0"], "1.2.x", "1.2.9"),
    (["1.0.0", "2.5.0", "3.0.0"], "<2.0.0 || >=2.5.0 <3.0.0", "2.5.0"),
    (["1.1.0", "1.4.5", "1.5.0"], "1.1 - 1.4.5", "1.4.5"),
    (["1.0.0", "1.1.0-rc.1", "1.1.0-rc.2"], ">=1.0.0-0", "1.1.0-rc.2"),
    (["1.0.0", "1.1.0-rc.1"], ">=1.0.0", "1.0.0"),
    (["5.0.1", "5.0.3", "5.1.0"], "5.0.x", "5.0.3"),
    (["1.0", "1.1", "main"], "*", "1.1"),
    (["1.0.0", "v1.0.0"], "1.0.0", "1.0.0"),  # a tie goes to the first listed, as Flux
]


@pytest.mark.parametrize(("tags", "rng", "expected"), SEMVER)
def test_semver(tags: list[str], rng: str, expected: str) -> None:
    assert policy.latest(tags, choice(semver={"range": rng})) == expected


def test_semver_without_a_match_says_what_flux_says() -> None:
    with pytest.raises(policy.NoLatest) as err:
        policy.latest(["latest", "1.0.0"], choice(semver={"range": ">=2.0.0"}))
    assert str(err.value) == "unable to determine latest version from provided list"
    with pytest.raises(policy.NoLatest) as err:
        policy.latest(["main"], choice(semver={"range": "1.x"}), TagFilter(pattern="^v"))
    assert str(err.value) == "version list argument cannot be empty"


def test_invalid_range_is_an_invalid_policy() -> None:
    with pytest.raises(policy.InvalidPolicy, match="invalid policy"):
        policy.latest(["1.0.0"], choice(semver={"range": "not a range"}))
    with pytest.raises(policy.InvalidPolicy, match="exactly one"):
        policy.check_policy(choice(semver={"range": "1.x"}, alphabetical={}))


ALPHABETICAL = [
    (["a", "c", "b"], "asc", "c"),
    (["a", "c", "b"], "desc", "a"),
    (["RELEASE.2023-01-31T08-42-01Z", "RELEASE.2024-02-01T00-00-00Z"], "asc", "RELEASE.2024-02-01T00-00-00Z"),
    (["10", "9"], "asc", "9"),  # strings, not numbers
]


@pytest.mark.parametrize(("tags", "order", "expected"), ALPHABETICAL)
def test_alphabetical(tags: list[str], order: str, expected: str) -> None:
    assert policy.latest(tags, choice(alphabetical={"order": order})) == expected


NUMERICAL = [
    (["1", "10", "9"], "asc", "10"),
    (["1", "10", "9"], "desc", "1"),
    (["1.5", "1.25", "-3"], "asc", "1.5"),
    (["1.5", "1.25", "-3"], "desc", "-3"),
]


@pytest.mark.parametrize(("tags", "order", "expected"), NUMERICAL)
def test_numerical(tags: list[str], order: str, expected: str) -> None:
    assert policy.latest(tags, choice(numerical={"order": order})) == expected


def test_numerical_refuses_a_tag_that_is_not_a_number() -> None:
    with pytest.raises(policy.NoLatest, match="failed to parse invalid numeric value 'latest'"):
        policy.latest(["1", "latest"], choice(numerical={}))


FILTERS = [
    # (tags, pattern, extract, policy, expected)
    (
        ["main-abc-100", "main-def-99", "dev-xyz-500", "latest"],
        r"^main-[a-f0-9]+-(?P<ts>[0-9]+)",
        "$ts",
        {"numerical": {"order": "asc"}},
        "main-abc-100",
    ),
    (
        ["main-abc-100", "main-def-99"],
        r"^main-[a-f0-9]+-(?<ts>[0-9]+)",
        "${ts}",
        {"numerical": {}},
        "main-abc-100",
    ),
    (
        ["v1.2.3-alpine", "v1.3.0-alpine", "v2.0.0"],
        r"^v(.*)-alpine$",
        "$1",
        {"semver": {"range": "1.x"}},
        "v1.3.0-alpine",
    ),
    (["app-b", "app-a", "other-z"], "^app-", "", {"alphabetical": {}}, "app-b"),
    (["rc-1", "1.0.0"], r"rc-(\d+)", "$$$1", {"alphabetical": {}}, "rc-1"),
    (["x1"], r"x(\d)", "$nosuch$1", {"numerical": {}}, "x1"),  # unknown group expands to nothing
]


@pytest.mark.parametrize(("tags", "pattern", "extract", "spec", "expected"), FILTERS)
def test_filter_tags_extract(
    tags: list[str], pattern: str, extract: str, spec: dict[str, Any], expected: str
) -> None:
    assert (
        policy.latest(tags, choice(**spec), TagFilter(pattern=pattern, extract=extract or None)) == expected
    )


def test_extract_expands_like_go() -> None:
    import re

    match = re.search(r"(?P<a>x)(y)", "xy")
    assert match is not None
    assert policy.expand("$a-$2-${a}-$$-$zz", match) == "x-y-x-$-"


def test_invalid_filter_pattern_is_an_invalid_policy() -> None:
    with pytest.raises(policy.InvalidPolicy, match="invalid regular expression"):
        policy.latest(["a"], choice(alphabetical={}), TagFilter(pattern="(unclosed"))
