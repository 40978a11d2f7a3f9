"""The YAML layer on its own: go-yaml v3 typing of input, go-yaml v2's exact output format."""

from __future__ import annotations

import math
from pathlib import Path
from textwrap import dedent

import pytest

from libs.kustomize.yamlio import (
    YAMLInputError,
    dump_document,
    dump_stream,
    load_all,
    plain_resolves_to_string,
    resolve_plain_v3,
)

pytestmark = pytest.mark.unit

# A ConfigMap exercising number forms, YAML 1.1 keywords, key order, quoting, folding and block
# scalars; EXPECTED is what kubectl kustomize (kustomize v5.5.0) printed for it.
SOURCE = dedent(
    r"""
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: t
    data:
      f1: 1.0
      f2: 1e3
      f3: 0.5
      f4: 0777
      f5: 0x1F
      f6: .5
      f7: 1_000
      f8: 2024-02-29
      f9: yes
      f10: on
      f11: ~
      f12: 1:20
      f13: 0.000001
      f14: 12345678901234567890
      f15: 1.5e300
      f16: "1:20"
      f17: +1
      f18: 0o17
      f19: 1234567.5
      f20: 100000.5
      f21: 2001-12-14t21:59:43.10-05:00
      f22: 09
      f23: -0
      f24: 0.1e-2
      a10: x
      a9: x
      A: x
      _b: x
      "1": x
      "-x": x
      "x y": "with\ttab"
      trail: "trailing "
      lead: " leading"
      multi: "line1\nline2 \nline3"
      multitrail: "a\n\n"
      multilead: "  a\nb"
      uni: "héllo ☃"
      long: "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr ssss"
      longq: "'aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr"
      longd: "yes aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr\tx"
      longdd: "yes aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp   qqqq rrrr\tx"
      nested: [[a, b], [], {}, {x: [1, 2]}, null, true, [[c]]]
      emptys: ""
      dash: "- x"
      dash2: "-x"
      q: "?x"
      pct: "%x"
      hash: "a #b"
      hash2: "a#b"
      colon2: "a:b"
      brace: "a{b}"
      dots: "..."
      dashes: "---"
      tilde: "~"
      nul: "null"
      tru: "True"
      inf: ".inf"
      nan: ".NaN"
      emoji: "hi 😀"
      cr: "a\rb"
      seq: "a\n- b\n"
      k8s-ab1: x
      k8s-ab01: x
      k8s-ab10: x
      k8s-ab: x
      "ab.c": x
      "ab-c": x
      "ab_c": x
      ab0: x
      ab00: x
      ab000: x
    """
).removeprefix("\n")

EXPECTED = dedent(
    r"""
    apiVersion: v1
    data:
      -x: x
      _b: x
      "1": x
      A: x
      a9: x
      a10: x
      ab-c: x
      ab.c: x
      ab_c: x
      ab0: x
      ab00: x
      ab000: x
      brace: a{b}
      colon2: a:b
      cr: "a\rb"
      dash: '- x'
      dash2: -x
      dashes: '---'
      dots: '...'
      emoji: "hi \U0001F600"
      emptys: ""
      f1: 1
      f2: 1000
      f3: 0.5
      f4: 511
      f5: 31
      f6: 0.5
      f7: 1000
      f8: "2024-02-29T00:00:00Z"
      f9: "yes"
      f10: "on"
      f11: null
      f12: "1:20"
      f13: 1e-06
      f14: 12345678901234567890
      f15: 1.5e+300
      f16: "1:20"
      f17: 1
      f18: 15
      f19: 1.2345675e+06
      f20: 100000.5
      f21: "2001-12-14T21:59:43.1-05:00"
      f22: 9
      f23: 0
      f24: 0.001
      hash: 'a #b'
      hash2: a#b
      inf: ".inf"
      k8s-ab: x
      k8s-ab1: x
      k8s-ab01: x
      k8s-ab10: x
      lead: ' leading'
      long: aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo
        pppp qqqq rrrr ssss
      longd: "yes aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn
        oooo pppp qqqq rrrr\tx"
      longdd: "yes aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn
        oooo pppp   qqqq rrrr\tx"
      longq: '''aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn
        oooo pppp qqqq rrrr'
      multi: "line1\nline2 \nline3"
      multilead: |2-
          a
        b
      multitrail: |+
        a

      nan: ".NaN"
      nested:
      - - a
        - b
      - []
      - {}
      - x:
        - 1
        - 2
      - null
      - true
      - - - c
      nul: "null"
      pct: '%x'
      q: ?x
      seq: |
        a
        - b
      tilde: "~"
      trail: 'trailing '
      tru: "True"
      uni: héllo ☃
      x y: "with\ttab"
    kind: ConfigMap
    metadata:
      name: t
    """
).removeprefix("\n")


def test_round_trip_matches_kustomize() -> None:
    docs = [d for d in load_all(SOURCE) if d is not None]
    assert dump_stream(docs) == EXPECTED


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("0777", 511),
        ("0o17", 15),
        ("0x1F", 31),
        ("1_000", 1000),
        ("+1", 1),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2024-02-29", "2024-02-29T00:00:00Z"),
        ("2024-02-30", "2024-02-30"),
        ("1:20", "1:20"),
        ("09", 9.0),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_plain_scalars_resolve_like_go_yaml_v3(text: str, value: object) -> None:
    resolved = resolve_plain_v3(text)
    assert resolved == value
    assert type(resolved) is type(value)


def test_special_floats() -> None:
    assert math.isnan(resolve_plain_v3(".nan"))
    assert resolve_plain_v3("-.inf") == -math.inf


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("yes", False),
        ("Off", False),
        ("y", False),
        ("2.10", False),
        ("01234", False),
        ("1:20", False),
        ("2024-02-29", False),
        ("<<", False),
        ("", False),
        ("hello", True),
        ("v1.2", True),
        ("0.0.1", True),
    ],
)
def test_which_strings_need_quotes(text: str, plain: bool) -> None:
    assert plain_resolves_to_string(text) is plain


def test_documents() -> None:
    assert dump_document({}) == "{}\n"
    assert dump_document([]) == "[]\n"
    assert dump_stream([{"a": 1}, {"b": [1, {"c": None}]}]) == "a: 1\n---\nb:\n- 1\n- c: null\n"


def test_malformed_yaml_reports_like_go_yaml() -> None:
    with pytest.raises(YAMLInputError, match=r"^yaml: line 4: did not find expected key$"):
        load_all("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n data:\n  key: value\n")


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("seed", [2, 5])
def test_random_documents_match_kustomize(seed: int) -> None:
    """Random keys/values (quotes, tabs, CRs, emoji, YAML keywords, long and multi-line keys)
    generated as JSON documents; the expected file is kubectl kustomize's output for them."""
    text = (DATA / f"random-{seed}.input.yaml").read_text(encoding="utf-8")
    expected = (DATA / f"random-{seed}.expected.yaml").read_text(encoding="utf-8")
    docs = [d for d in load_all(text) if d is not None]
    docs.sort(key=lambda d: d["metadata"]["name"])
    assert dump_stream(docs) == expected
