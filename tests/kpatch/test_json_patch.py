from __future__ import annotations

import copy
from typing import Any

import pytest

from libs.kpatch import PatchError, json_patch, parse_pointer, resolve_pointer

pytestmark = pytest.mark.unit

# RFC 6902, Appendix A (A.1 - A.16), minus the cases that are errors (tested below).
RFC_6902_EXAMPLES: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    (
        "A.1 add object member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2 add array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (
        "A.3 remove object member",
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (
        "A.4 remove array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replace a value",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 move a value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 move an array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 test success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 add a nested member object",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 ignore unrecognized members",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.14 ~ escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.16 add an array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]

MORE_CASES: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    ("add at the end index", {"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}], {"a": [1, 2]}),
    ("add replaces an existing member", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("add at the root replaces the document", {"a": 1}, [{"op": "add", "path": "", "value": [1]}], [1]),
    ("replace the root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    (
        "replace an array element",
        {"a": [1, 2]},
        [{"op": "replace", "path": "/a/0", "value": 9}],
        {"a": [9, 2]},
    ),
    ("empty member name", {"": 1}, [{"op": "replace", "path": "/", "value": 2}], {"": 2}),
    ("escaped slash", {}, [{"op": "add", "path": "/a~1b", "value": 1}], {"a/b": 1}),
    (
        "copy is deep",
        {"a": {"b": [1]}},
        [{"op": "copy", "from": "/a", "path": "/c"}, {"op": "add", "path": "/c/b/-", "value": 2}],
        {"a": {"b": [1]}, "c": {"b": [1, 2]}},
    ),
    ("move to itself", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    (
        "annotation with a slash (Kubernetes style)",
        {"metadata": {"annotations": {}}},
        [{"op": "add", "path": "/metadata/annotations/example.com~1owner", "value": "me"}],
        {"metadata": {"annotations": {"example.com/owner": "me"}}},
    ),
    (
        "operations see earlier results",
        {"spec": {"containers": [{"name": "a"}]}},
        [
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "b"}},
            {"op": "test", "path": "/spec/containers/1/name", "value": "b"},
            {"op": "remove", "path": "/spec/containers/0"},
        ],
        {"spec": {"containers": [{"name": "b"}]}},
    ),
    ("test numbers 1 and 1.0 are equal", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ("no operations", {"a": 1}, [], {"a": 1}),
]


@pytest.mark.parametrize(
    ("doc", "ops", "expected"),
    [c[1:] for c in RFC_6902_EXAMPLES + MORE_CASES],
    ids=[c[0] for c in RFC_6902_EXAMPLES + MORE_CASES],
)
def test_json_patch(doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    doc_before, ops_before = copy.deepcopy(doc), copy.deepcopy(ops)
    assert json_patch(doc, ops) == expected
    assert (doc, ops) == (doc_before, ops_before), "inputs must not be modified"


ERROR_CASES: list[tuple[str, Any, Any, str]] = [
    ("A.9 test failure", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test failed"),
    (
        "A.12 add to a nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        "no member 'baz'",
    ),
    ("A.13 invalid JSON patch (op missing)", {}, [{"path": "/a", "value": 1}], "unknown or missing op"),
    (
        "A.15 comparing strings and numbers",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        "test failed",
    ),
    ("unknown op", {}, [{"op": "frobnicate", "path": "/a"}], "unknown or missing op 'frobnicate'"),
    ("missing path", {}, [{"op": "remove"}], "missing or non-string 'path'"),
    ("add without value", {}, [{"op": "add", "path": "/a"}], "missing 'value'"),
    ("replace without value", {"a": 1}, [{"op": "replace", "path": "/a"}], "missing 'value'"),
    ("test without value", {"a": 1}, [{"op": "test", "path": "/a"}], "missing 'value'"),
    ("move without from", {"a": 1}, [{"op": "move", "path": "/b"}], "missing 'from'"),
    ("copy without from", {"a": 1}, [{"op": "copy", "path": "/b"}], "missing 'from'"),
    ("from is not a string", {"a": 1}, [{"op": "copy", "from": 1, "path": "/b"}], "'from' must be a string"),
    ("operation is not an object", {}, ["add"], "must be an object"),
    ("ops is not a list", {}, {"op": "add", "path": "/a", "value": 1}, "must be a list"),
    ("remove a missing member", {"a": 1}, [{"op": "remove", "path": "/b"}], "no member 'b'"),
    ("replace a missing member", {"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], "no member 'b'"),
    ("remove the root", {"a": 1}, [{"op": "remove", "path": ""}], "whole document"),
    ("add past the end", {"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}], "out of range"),
    ("remove past the end", {"a": [1]}, [{"op": "remove", "path": "/a/1"}], "out of range"),
    ("replace at '-'", {"a": [1]}, [{"op": "replace", "path": "/a/-", "value": 1}], "'-' names no existing"),
    ("leading zero index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], "not an array index"),
    ("negative index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/-1"}], "not an array index"),
    ("pointer without a slash", {"a": 1}, [{"op": "remove", "path": "a"}], "must be empty or start with '/'"),
    ("bad escape", {"a": 1}, [{"op": "remove", "path": "/a~2"}], "'~' must be followed by '0' or '1'"),
    (
        "descend into a scalar",
        {"a": 1},
        [{"op": "add", "path": "/a/b/c", "value": 1}],
        "cannot descend into int",
    ),
    ("add under a scalar", {"a": 1}, [{"op": "add", "path": "/a/b", "value": 1}], "parent is a int"),
    (
        "move into its own child",
        {"a": {"b": 1}},
        [{"op": "move", "from": "/a", "path": "/a/b/c"}],
        "into its own child",
    ),
    ("move from nowhere", {"a": 1}, [{"op": "move", "from": "/x", "path": "/b"}], "no member 'x'"),
    ("copy from nowhere", {"a": 1}, [{"op": "copy", "from": "/x", "path": "/b"}], "no member 'x'"),
    ("test true is not 1", {"a": True}, [{"op": "test", "path": "/a", "value": 1}], "test failed"),
    ("test 0 is not false", {"a": 0}, [{"op": "test", "path": "/a", "value": False}], "test failed"),
    ("test a missing member", {"a": 1}, [{"op": "test", "path": "/b", "value": 1}], "no member 'b'"),
]


@pytest.mark.parametrize(
    ("doc", "ops", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_json_patch_errors(doc: Any, ops: Any, message: str) -> None:
    with pytest.raises(PatchError) as raised:
        json_patch(doc, ops)
    assert message in str(raised.value)


def test_error_names_the_operation_and_path() -> None:
    ops = [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/spec/missing"}]
    with pytest.raises(PatchError, match=r"operation 1 \(remove '/spec/missing'\)"):
        json_patch({"spec": {}}, ops)


def test_failed_patch_leaves_the_document_alone() -> None:
    doc = {"a": [1]}
    with pytest.raises(PatchError):
        json_patch(
            doc, [{"op": "add", "path": "/a/-", "value": 2}, {"op": "test", "path": "/a/0", "value": 5}]
        )
    assert doc == {"a": [1]}


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        ("", []),
        ("/", [""]),
        ("/a/b", ["a", "b"]),
        ("/a~1b/~0c", ["a/b", "~c"]),
        ("/~01", ["~1"]),
        ("//x", ["", "x"]),
    ],
)
def test_parse_pointer(pointer: str, tokens: list[str]) -> None:
    assert parse_pointer(pointer) == tokens


# RFC 6901, section 5
RFC_6901_DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", RFC_6901_DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_resolve_pointer_rfc6901(pointer: str, value: Any) -> None:
    assert resolve_pointer(RFC_6901_DOC, pointer) == value
