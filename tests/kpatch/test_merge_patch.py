from __future__ import annotations

import copy
from typing import Any

import pytest

from libs.kpatch import merge_patch

pytestmark = pytest.mark.unit

# RFC 7386, Appendix A, in order, plus the example of section 3.
RFC_7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    (
        {
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
        },
        {
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": None},
            "tags": ["example"],
        },
        {
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "phoneNumber": "+01-123-456-7890",
        },
    ),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7386_EXAMPLES)
def test_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    assert merge_patch(target, patch) == expected
    assert (target, patch) == (target_before, patch_before), "inputs must not be modified"


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # Kubernetes-shaped: labels merge, a label is removed, spec.replicas changes, lists replace
        (
            {"metadata": {"labels": {"app": "a", "tier": "web"}}, "spec": {"replicas": 1, "ports": [1, 2]}},
            {"metadata": {"labels": {"tier": None, "env": "prod"}}, "spec": {"replicas": 3, "ports": [3]}},
            {"metadata": {"labels": {"app": "a", "env": "prod"}}, "spec": {"replicas": 3, "ports": [3]}},
        ),
        ({"a": 1}, {}, {"a": 1}),
        (None, {"a": 1}, {"a": 1}),
        ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"b": 1, "c": None}}, {"a": {"b": 1}}),
    ],
    ids=["kubernetes object", "empty patch", "null target", "object to scalar", "scalar to object"],
)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_result_shares_nothing_with_the_inputs() -> None:
    target = {"keep": {"x": [1]}}
    patch = {"new": {"y": [2]}}
    result = merge_patch(target, patch)
    result["keep"]["x"].append(9)
    result["new"]["y"].append(9)
    assert target == {"keep": {"x": [1]}}
    assert patch == {"new": {"y": [2]}}
