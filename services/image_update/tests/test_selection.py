"""Which policies an automation uses, and how their selection is read (unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.api.meta import LabelSelector
from libs.setters import ImageRef, SetterError
from services.image_update.automation import (
    MAX_MESSAGE,
    _apply_under,
    _clean_path,
    _clip,
    _latest,
    selector_matches,
    selector_problem,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        (
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
            {"team": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": ""}, False),
    ],
)
def test_selector(selector: dict | None, labels: dict[str, str], expected: bool) -> None:
    parsed = None if selector is None else LabelSelector.model_validate(selector)
    assert selector_matches(parsed, labels) is expected


def test_selector_problems() -> None:
    assert selector_problem(None) is None
    bad_op = LabelSelector.model_validate({"matchExpressions": [{"key": "a", "operator": "Is"}]})
    assert "not a valid label selector operator" in (selector_problem(bad_op) or "")
    no_values = LabelSelector.model_validate({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert "non-empty" in (selector_problem(no_values) or "")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"latestRef": {"name": "ghcr.io/a", "tag": "1"}}, ImageRef("ghcr.io/a", "1")),
        ({"latestRef": {"name": "a", "tag": "1", "digest": "sha256:x"}}, ImageRef("a", "1", "sha256:x")),
        ({"latestImage": "localhost:5000/org/app:2.0"}, ImageRef("localhost:5000/org/app", "2.0")),
        ({"latestImage": "app:2@sha256:y"}, ImageRef("app", "2", "sha256:y")),
        ({"latestImage": "localhost:5000/app"}, None),
        ({}, None),
    ],
)
def test_latest(status: dict, expected: ImageRef | None) -> None:
    assert _latest({"status": status}) == expected


def test_update_path() -> None:
    assert _clean_path(None) == "."
    assert _clean_path("./apps/") == "apps"
    assert _clean_path("/apps") == "apps"
    assert _clean_path("../elsewhere") is None
    assert _clean_path("apps/../..") is None


def test_update_path_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "x.yaml"
    victim.write_text('image: a:1 # {"$imagepolicy": "ns:p"}\n')
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "apps").symlink_to(outside)
    (tree / "linked.yaml").symlink_to(victim)
    policies = {"ns:p": ImageRef("a", "2")}
    with pytest.raises(SetterError, match="leads out of the repository"):
        _apply_under(tree, "apps", policies)
    assert not _apply_under(tree, ".", policies)  # symlinked files and directories are not followed
    assert victim.read_text() == 'image: a:1 # {"$imagepolicy": "ns:p"}\n'
    with pytest.raises(SetterError, match="does not exist"):
        _apply_under(tree, "missing", policies)


def test_long_commit_messages_are_clipped_in_status() -> None:
    assert _clip("short") == "short"
    clipped = _clip("x" * (MAX_MESSAGE + 10))
    assert clipped.startswith("x" * MAX_MESSAGE) and clipped.endswith("(truncated)")
    assert len(clipped) < MAX_MESSAGE + 20
