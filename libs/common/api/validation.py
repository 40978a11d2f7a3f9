"""Validation of Kubernetes JSON against the Flux models, with errors that name the field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from libs.common.api.meta import FluxObject
from libs.common.api.registry import UnknownKind, kind_for

__all__ = ["ValidationFailed", "error_lines", "validate_object"]


class ValidationFailed(ValueError):
    """An object failed validation; `problems` holds one `<path>: <problem>` line per error."""

    def __init__(self, subject: str, problems: list[str]) -> None:
        self.subject = subject
        self.problems = problems
        super().__init__("\n".join(f"{subject}: {problem}" for problem in problems))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _problem(error: ErrorDetails) -> tuple[str, str]:
    """(extra path suffix, human message) for one pydantic error."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "flux_rule":
        return str(ctx["field"]), str(ctx["problem"])
    if kind == "missing":
        return "", "Required value"
    if kind == "string_pattern_mismatch":
        return "", f"must match {ctx['pattern']}"
    if kind == "literal_error":
        return "", f"must be one of {ctx['expected']}"
    if kind == "string_too_long":
        return "", f"must be at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        return "", f"must be at least {ctx['min_length']} characters"
    if kind == "too_long":
        return "", f"must have at most {ctx['max_length']} items"
    if kind == "greater_than_equal":
        return "", f"must be greater than or equal to {ctx['ge']}"
    return "", error["msg"]


def error_lines(exc: ValidationError) -> list[str]:
    """`spec.field: problem` lines (camelCase JSON paths) for a pydantic ValidationError."""
    lines: list[str] = []
    for error in exc.errors():
        suffix, message = _problem(error)
        path = _path(tuple(error["loc"]))
        if suffix:
            path = f"{path}.{suffix}" if path else suffix
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _subject(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    return "/".join(
        [
            str(obj.get("kind") or "<unknown kind>"),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
        ]
    )


def validate_object(obj: dict[str, Any]) -> FluxObject:
    """Validate a Kubernetes object of any served Flux kind and return the typed model.

    Raises `ValidationFailed` listing `<Kind>/<namespace>/<name>: spec.field: problem` lines.
    """
    if not isinstance(obj, dict):
        raise ValidationFailed(
            "<unknown>", [f"expected a Kubernetes object (mapping), got {type(obj).__name__}"]
        )
    subject = _subject(obj)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ValidationFailed(subject, ["apiVersion and kind: Required value"])
    try:
        cls = kind_for(api_version, kind)
    except UnknownKind as exc:
        raise ValidationFailed(subject, [str(exc)]) from None
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise ValidationFailed(subject, error_lines(exc)) from None
