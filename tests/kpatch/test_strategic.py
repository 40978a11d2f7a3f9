from __future__ import annotations

import copy
from typing import Any

import pytest

from libs.kpatch import PatchError, generic_object_schema, schema_for, strategic_merge_patch
from libs.kpatch.strategic import Style
from tests.kpatch.cases import CASES, Case, container, pod

pytestmark = pytest.mark.unit


def apply(case: Case, style: Style = "apimachinery") -> dict[str, Any]:
    original = case.original
    schema = schema_for(original["apiVersion"], original["kind"])
    return strategic_merge_patch(original, case.patch, schema, style=style)


def directive_keys(value: Any) -> list[str]:
    """Every key starting with "$" anywhere in ``value``."""
    if isinstance(value, dict):
        return [k for k in value if k.startswith("$")] + [
            d for v in value.values() for d in directive_keys(v)
        ]
    if isinstance(value, list):
        return [d for v in value for d in directive_keys(v)]
    return []


@pytest.mark.parametrize("case", [c for c in CASES if c.expected is not None], ids=lambda c: c.id)
def test_strategic_merge_patch(case: Case) -> None:
    original, patch = copy.deepcopy(case.original), copy.deepcopy(case.patch)
    result = apply(case)
    assert result == case.expected
    assert directive_keys(result) == []
    assert (case.original, case.patch) == (original, patch), "inputs must not be modified"


@pytest.mark.parametrize("case", [c for c in CASES if c.expected is not None], ids=lambda c: c.id)
def test_kustomize_style(case: Case) -> None:
    result = apply(case, style="kustomize")
    assert result == (case.kustomize_expected or case.expected)
    assert directive_keys(result) == []


@pytest.mark.parametrize("style", ["apimachinery", "kustomize"])
@pytest.mark.parametrize("case", [c for c in CASES if c.expected is None], ids=lambda c: c.id)
def test_strategic_merge_patch_errors(case: Case, style: Style) -> None:
    with pytest.raises(PatchError) as raised:
        apply(case, style)
    assert case.error in str(raised.value)


def test_unknown_style() -> None:
    with pytest.raises(PatchError, match="unknown style 'yaml'"):
        strategic_merge_patch({}, {}, None, style="yaml")  # type: ignore[arg-type]


def test_result_shares_nothing_with_the_inputs() -> None:
    original = pod({"containers": [container("a")]}, labels={"a": "1"})
    patch = {"metadata": {"annotations": {"x": "y"}}, "spec": {"containers": [{"name": "b", "env": []}]}}
    result = strategic_merge_patch(original, patch, schema_for("v1", "Pod"))
    result["metadata"]["labels"]["a"] = "changed"
    result["metadata"]["annotations"]["x"] = "changed"
    result["spec"]["containers"][0]["env"].append({"name": "E"})
    assert original["metadata"]["labels"] == {"a": "1"}
    assert patch == {
        "metadata": {"annotations": {"x": "y"}},
        "spec": {"containers": [{"name": "b", "env": []}]},
    }


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        # without a schema every list is replaced: JSON merge patch plus directives
        ({"l": [1, 2], "m": {"a": 1}}, {"l": [3], "m": {"b": 2}}, {"l": [3], "m": {"a": 1, "b": 2}}),
        ({"m": {"a": 1, "b": 2}}, {"m": {"a": None}}, {"m": {"b": 2}}),
        ({"m": {"a": 1}}, {"m": {"$patch": "replace", "c": 3}}, {"m": {"c": 3}}),
        ({"m": {"a": 1}, "k": 1}, {"m": {"$patch": "delete"}}, {"m": {}, "k": 1}),
        ({"m": {"a": 1, "b": 2}}, {"m": {"$retainKeys": ["b", "c"], "c": 3}}, {"m": {"b": 2, "c": 3}}),
        ({"l": [{"name": "a"}]}, {"l": [{"name": "b"}, {"$patch": "replace"}]}, {"l": [{"name": "b"}]}),
        # without a merge strategy the list is replaced as sent; the API server drops the marker
        (
            {"l": [{"name": "a"}, {"name": "c"}]},
            {"l": [{"name": "a", "$patch": "delete"}, {"name": "b"}]},
            {"l": [{"name": "a"}, {"name": "b"}]},
        ),
        ({"f": ["a", "b"]}, {"$deleteFromPrimitiveList/f": ["a"]}, {"f": ["b"]}),
        ({"f": ["a", "b"]}, {"$setElementOrder/f": ["b", "a"]}, {"f": ["b", "a"]}),
        (
            {},
            {"new": {"$patch": "replace", "x": 1}, "other": {"x": [{"$patch": "replace"}, 1]}},
            {"other": {"x": [1]}},
        ),
        ({"x": 1}, {"$patch": "delete"}, {}),
        ({"x": 1}, {"$patch": "replace", "y": 2}, {"y": 2}),
    ],
    ids=[
        "lists replace",
        "null deletes",
        "$patch replace",
        "$patch delete",
        "$retainKeys",
        "list $patch replace",
        "list $patch delete needs a merge strategy",
        "$deleteFromPrimitiveList",
        "$setElementOrder",
        "directives in new values",
        "top-level delete",
        "top-level replace",
    ],
)
def test_without_schema(original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert strategic_merge_patch(original, patch, None) == expected


def test_directives_in_new_values_in_kustomize_style() -> None:
    patch = {
        "new": {"$patch": "replace", "x": 1},
        "gone": {"$patch": "delete"},
        "other": {"$patch": "merge", "y": 2},
    }
    assert strategic_merge_patch({}, patch, None, style="kustomize") == {"new": {"x": 1}, "other": {"y": 2}}


def test_custom_resource_metadata_merges_through_the_generic_schema() -> None:
    original = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "k", "finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {"components": ["one", "two"]},
    }
    patch = {"metadata": {"finalizers": ["b"], "labels": {"y": "2"}}, "spec": {"components": ["three"]}}
    assert schema_for("kustomize.toolkit.fluxcd.io/v1", "Kustomization") is None
    result = strategic_merge_patch(original, patch, generic_object_schema())
    assert result["metadata"] == {"name": "k", "finalizers": ["b", "a"], "labels": {"x": "1", "y": "2"}}
    assert result["spec"] == {"components": ["three"]}


@pytest.mark.parametrize(
    ("original", "patch", "message"),
    [
        ([], {}, "original must be an object"),
        ({}, [], "patch must be an object"),
        ({"m": {}}, {"m": {"$retainKeys": "a"}}, "$retainKeys: must be a list"),
        ({"f": ["a"]}, {"$deleteFromPrimitiveList/f": "a"}, "must be a list"),
        ({"f": ["a"]}, {"$setElementOrder/f": "a"}, "must be a list"),
        ({"f": "a"}, {"$setElementOrder/f": ["a"]}, "applies to a list"),
        ({"f": [{"a": 1}]}, {"$deleteFromPrimitiveList/f": [{"a": 1}]}, "lists of primitives only"),
    ],
)
def test_malformed_directives(original: Any, patch: Any, message: str) -> None:
    with pytest.raises(PatchError) as raised:
        strategic_merge_patch(original, patch, None)
    assert message in str(raised.value)


def test_mixed_and_nested_lists_cannot_merge() -> None:
    finalizers = {"metadata": {"finalizers": ["a"]}}
    with pytest.raises(PatchError, match="mixes objects and primitives"):
        strategic_merge_patch(finalizers, {"metadata": {"finalizers": [{"x": 1}]}}, schema_for("v1", "Pod"))
    with pytest.raises(PatchError, match="list of lists"):
        strategic_merge_patch(finalizers, {"metadata": {"finalizers": [["x"]]}}, schema_for("v1", "Pod"))
