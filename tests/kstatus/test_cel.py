"""The CEL subset for healthCheckExprs: Flux's documented examples, CEL's error rules, and
the custom health checks built on it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from libs.kstatus import CURRENT, FAILED, IN_PROGRESS, CelError, CustomCheck
from libs.kstatus.cel import evaluate, parse

pytestmark = pytest.mark.unit

OBJ: dict[str, Any] = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w", "generation": 2, "labels": {"tier": "front"}},
    "spec": {"replicas": 3, "paused": False},
    "status": {
        "observedGeneration": 2,
        "phase": "Running",
        "readyReplicas": 3,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded"},
            {"type": "Degraded", "status": "False"},
        ],
    },
}

VALUES = [
    ("status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')", True),
    ("status.conditions.exists(e, e.type == 'Degraded' && e.status == 'True')", False),
    ("status.conditions.exists_one(e, e.status == 'True')", True),
    ("status.conditions.map(c, c.type)", ["Ready", "Degraded"]),
    ("status.phase == 'Running' && status.readyReplicas == spec.replicas", True),
    ("has(status.readyReplicas) && !has(status.failed)", True),
    ("size(status.conditions) == 2 && status.conditions.size() > 1", True),
    ("status.conditions[0].reason.startsWith('Succ')", True),
    ("metadata.labels['tier'] in ['front', 'back']", True),
    ("'tier' in metadata.labels", True),
    ("spec.paused ? 'paused' : 'running'", "running"),
    ("spec.replicas * 2 - 1 == 5 && 7 / 2 == 3 && 7 % 2 == 1 && 1.5 + 1 == 2.5", True),
    ("-spec.replicas < 0 || status.missing", True),
    ("status.missing == 1 || true", True),
    ("false && status.missing", False),
    ("\"a\\\"b\" + 'c' == 'a\"bc'", True),
    ("string(spec.replicas) == '3' && int('4') == 4 && double(1) == 1.0", True),
    ("status.phase.matches('^Run') && status.phase.lowerAscii() == 'running'", True),
    ("1 == 1.0 && 1 != true && null == null", True),
]


@pytest.mark.parametrize(("expression", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_evaluates_like_cel(expression: str, value: Any) -> None:
    assert evaluate(expression, OBJ) == value


ERRORS = [
    ("status.missing == 1", "no such key: missing"),
    ("status.phase < 3", "cannot compare string and int"),
    ("self.status", "undeclared reference to 'self'"),
    ("status.conditions.all(e, e.missing)", "no such key: missing"),
    ("spec.replicas / 0", "division by zero"),
    ("status.phase.nope()", "unknown string method nope()"),
    ("spec.replicas && true", "expected a bool, got int"),
]


@pytest.mark.parametrize(("expression", "error"), ERRORS, ids=[e[0] for e in ERRORS])
def test_runtime_errors(expression: str, error: str) -> None:
    with pytest.raises(CelError, match=re.escape(error)):
        evaluate(expression, OBJ)


@pytest.mark.parametrize(
    "expression",
    [
        "status.phase ==",
        "has(status)",
        "status.conditions.all(1, true)",
        "a b",
        "x ? y",
        "'unterminated",
        "a[1",
    ],
)
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(CelError):
        parse(expression)


def test_custom_check_evaluates_in_progress_then_failed_then_current() -> None:
    check = CustomCheck.compile(
        "example.com/v1",
        "Widget",
        in_progress="status.phase == 'Pending'",
        failed="status.phase == 'Failed'",
        current="status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')",
    )
    assert check.matches("example.com/v2", "Widget")
    assert not check.matches("example.com/v1", "Gadget")
    assert not check.matches("other.com/v1", "Widget")
    assert check.status(OBJ).status == CURRENT

    def with_status(**status: Any) -> dict[str, Any]:
        return {**OBJ, "status": {**OBJ["status"], **status}}

    assert check.status(with_status(phase="Pending")).status == IN_PROGRESS
    failed = check.status(with_status(phase="Failed"))
    assert (failed.status, failed.message) == (
        FAILED,
        "failed expression \"status.phase == 'Failed'\" is true",
    )
    behind = check.status(with_status(observedGeneration=1))
    assert behind.status == IN_PROGRESS and "latest observed generation is 1" in behind.message
    broken = check.status({**OBJ, "status": {"phase": "Running"}})
    assert broken.status == IN_PROGRESS and "no such key: conditions" in broken.message
    assert check.status(None).status == "NotFound"
    fresh = check.status({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert fresh.status == IN_PROGRESS and "no such key: phase" in fresh.message


def test_custom_check_names_the_expression_that_does_not_parse() -> None:
    with pytest.raises(
        CelError, match=re.escape("failed expression 'status.phase ==' of example.com/v1 Widget")
    ):
        CustomCheck.compile("example.com/v1", "Widget", current="true", failed="status.phase ==")
