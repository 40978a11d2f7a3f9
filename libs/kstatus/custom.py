"""Flux's `healthCheckExprs`: CEL expressions that decide the health of one API group (and kind).

For an object whose group (and kind, when given) matches, after the generic checks (deletion →
`Terminating`, `status.observedGeneration` behind `metadata.generation` → `InProgress`), the
expressions are evaluated in the order `inProgress`, `failed`, `current`; the first that is true
decides. None true → `InProgress`. The object's top-level fields (`metadata`, `spec`, `status` …)
are the variables, as in Flux (`metadata`, `spec` and `status` are always defined, empty when the
object has none). An evaluation error leaves the object `InProgress`, with the error
in the message, so a health check waiting on it names the problem when it times out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from libs.kstatus.cel import CelError, Expression, parse
from libs.kstatus.status import CURRENT, FAILED, IN_PROGRESS, TERMINATING, ObjectStatus

__all__ = ["CustomCheck"]


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True)
class CustomCheck:
    """One compiled `healthCheckExprs` entry."""

    group: str
    kind: str | None
    in_progress: Expression | None
    failed: Expression | None
    current: Expression | None

    @classmethod
    def compile(
        cls,
        api_version: str,
        kind: str | None = None,
        *,
        current: str | None = None,
        in_progress: str | None = None,
        failed: str | None = None,
    ) -> CustomCheck:
        """Parse the expressions; `CelError` names the one that does not parse."""
        compiled: dict[str, Expression | None] = {}
        for name, text in (("inProgress", in_progress), ("failed", failed), ("current", current)):
            if not text:
                compiled[name] = None
                continue
            try:
                compiled[name] = parse(text)
            except CelError as exc:
                where = f"{api_version} {kind}" if kind else api_version
                raise CelError(f"{name} expression {text!r} of {where}: {exc}") from None
        return cls(
            _group(api_version), kind or None, compiled["inProgress"], compiled["failed"], compiled["current"]
        )

    def matches(self, api_version: str, kind: str) -> bool:
        """Flux matches the group only (any version), and the kind when one is given."""
        return _group(api_version) == self.group and (self.kind is None or self.kind == kind)

    def status(self, obj: Mapping[str, Any] | None) -> ObjectStatus:
        if obj is None:
            return ObjectStatus("NotFound", "Resource not found")
        md = obj.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return ObjectStatus(TERMINATING, "Resource scheduled for deletion")
        status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
        observed, generation = (status or {}).get("observedGeneration"), md.get("generation")
        if isinstance(observed, int) and isinstance(generation, int) and observed != generation:
            return ObjectStatus(
                IN_PROGRESS,
                f"{obj.get('kind')} generation is {generation}, but latest observed generation is {observed}",
            )
        # `metadata`, `spec` and `status` are always declared (an object without a status yet
        # is still being set up); other top-level fields are variables when present.
        variables = {"metadata": {}, "spec": {}, "status": {}, **obj}
        for name, expression, result in (
            ("inProgress", self.in_progress, IN_PROGRESS),
            ("failed", self.failed, FAILED),
            ("current", self.current, CURRENT),
        ):
            if expression is None:
                continue
            try:
                value = expression.evaluate(variables)
            except CelError as exc:
                return ObjectStatus(IN_PROGRESS, f"{name} expression {expression.source!r} failed: {exc}")
            if value is True:
                return ObjectStatus(result, f"{name} expression {expression.source!r} is true")
        return ObjectStatus(IN_PROGRESS, "no healthCheckExprs expression is true yet")
