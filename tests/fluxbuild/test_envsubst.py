"""Flux's substitution language: the syntax table, escapes, strict mode and malformed expressions."""

from __future__ import annotations

import pytest

from libs.fluxbuild.envsubst import SubstitutionError, VariableNotSet, evaluate

pytestmark = pytest.mark.unit

VARS = {"name": "podinfo", "empty": "", "path": "a/b/c.tar.gz", "n": "3", "mixed": "Hello World"}


def strict(name: str) -> tuple[str, bool]:
    return VARS.get(name, ""), name in VARS


def lenient(name: str) -> tuple[str, bool]:
    return VARS.get(name, ""), True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("${name}", "podinfo"),
        ("app-${name}-svc", "app-podinfo-svc"),
        ("${name}${n}", "podinfo3"),
        ("$name stays", "$name stays"),  # no braces: left alone
        ("$${name}", "${name}"),  # escape
        ("cost: $$5", "cost: $5"),  # $$ is one $
        ("${missing:=fallback}", "fallback"),
        ("${empty:=fallback}", "fallback"),
        ("${name:=fallback}", "podinfo"),
        ("${missing:-dash}", "dash"),
        ("${missing=eq}", "eq"),
        ("${missing:=${name}-x}", "podinfo-x"),  # nested default
        ("${missing:=}", ""),
        ("${name:3}", "info"),
        ("${name:0:3}", "pod"),
        ("${name:-3:2}", "podinfo"),  # ':-' is the default operator, not a negative offset
        ("${name:1:-1}", "odinf"),
        ("${name:10}", ""),
        ("${#name}", "7"),
        ("${name^}", "Podinfo"),
        ("${name^^}", "PODINFO"),
        ("${mixed,}", "hello World"),
        ("${mixed,,}", "hello world"),
        ("${path#*/}", "b/c.tar.gz"),
        ("${path##*/}", "c.tar.gz"),
        ("${path%.*}", "a/b/c.tar"),
        ("${path%%.*}", "a/b/c"),
        ("${name/o/0}", "p0dinfo"),
        ("${name//o/0}", "p0dinf0"),
        ("${name/#pod/svc}", "svcinfo"),
        ("${name/%info/cast}", "podcast"),
    ],
)
def test_syntax_table(text: str, expected: str) -> None:
    assert evaluate(text, strict) == expected


def test_strict_mode_names_the_undefined_variable() -> None:
    with pytest.raises(VariableNotSet) as err:
        evaluate("image: ${IMAGE_TAG}", strict)
    assert str(err.value) == 'variable not set (strict mode): "IMAGE_TAG"'
    assert err.value.name == "IMAGE_TAG"


def test_strict_mode_also_covers_transforming_operators() -> None:
    with pytest.raises(VariableNotSet, match="CLUSTER"):
        evaluate("${CLUSTER^^}", strict)


def test_lenient_mode_replaces_undefined_variables_with_empty_text() -> None:
    assert evaluate("a${missing}b", lenient) == "ab"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${}", "unable to parse variable name"),
        ("${ name}", "unable to parse variable name"),
        ("${name", "missing closing brace"),
        ("${name-x}", "missing closing brace"),  # only ':-' is an operator in Flux
        ("${name.x}", "missing closing brace"),
        ("${name:=x", "unable to parse substitution within function"),
        ("${name#}", "unable to parse substitution within function"),
        ("${name/o}", "bad substitution"),  # the pattern runs to the end: no closing delimiter
    ],
)
def test_malformed_expressions_fail_like_flux(text: str, message: str) -> None:
    with pytest.raises(SubstitutionError, match=message):
        evaluate(text, lenient)


def test_text_without_dollar_is_returned_unchanged() -> None:
    text = "key: {a: [1, 2]}\n" * 1000
    assert evaluate(text, strict) is text


def test_many_expressions_do_not_recurse() -> None:
    text = "${name}," * 5000
    assert evaluate(text, strict) == "podinfo," * 5000
