"""Structured logs: JSON lines (or readable text), bound object keys, secrets redacted.

``configure_logging("info", "json", "sluice-source")`` installs one handler on the root logger.
Each line is one JSON object::

    {"ts": "2026-11-25T19:49:37.123Z", "level": "info", "logger": "services.source",
     "msg": "artifact stored", "service": "sluice-source", "kind": "GitRepository",
     "namespace": "flux-system", "name": "podinfo", "revision": "main@sha1:…",
     "trace_id": "4bf9…"}

A reconcile binds its object once and logs through the adapter; bound fields can be re-bound::

    log = bind(logging.getLogger(__name__), kind="GitRepository", namespace=ns, name=name)
    log.info("fetching")
    log = log.bind(revision=revision)          # or bind(log, revision=revision)
    log.info("stored", extra={"size": n})      # per-call fields join the bound ones

When a span is active, ``trace_id`` and ``span_id`` are added automatically. Every field value and
message passes the redaction filter: values under keys named like password/token/secret/identity/
authorization/bearer are masked, URL credentials are stripped, PEM private keys removed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from libs.common.runtime.redact import (
    is_sensitive_key,
    redact_url,
    redact_value,
    sanitize_message,
)

__all__ = [
    "BoundLogger",
    "JsonFormatter",
    "RedactionFilter",
    "TextFormatter",
    "bind",
    "configure_logging",
    "get_logger",
    "is_sensitive_key",
    "redact_url",
    "sanitize_message",
]

FIELDS_ATTR = "sluice_fields"
_HANDLER_MARK = "_sluice_handler"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", FIELDS_ATTR}
)
_LEVEL_NAMES = {"warn": "warning", "fatal": "critical"}


def _level_number(level: str) -> int:
    name = _LEVEL_NAMES.get(level.strip().lower(), level.strip().lower())
    number = logging.getLevelName(name.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error or critical")
    return number


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: bound fields first, then plain ``extra=`` attributes."""
    fields: dict[str, Any] = dict(getattr(record, FIELDS_ATTR, None) or {})
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


class RedactionFilter(logging.Filter):
    """Masks secrets in a record before any formatter sees it (message, args, fields, exception)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A format string that does not match its arguments must not raise into the caller.
            message = f"{record.msg} (unformattable log arguments: {record.args!r})"
        record.msg = sanitize_message(message)
        record.args = None
        bound = getattr(record, FIELDS_ATTR, None)
        if bound:
            setattr(record, FIELDS_ATTR, {k: redact_value(k, v) for k, v in bound.items()})
        for key in list(vars(record)):
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                setattr(record, key, redact_value(key, getattr(record, key)))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = sanitize_message(record.exc_text)
        if record.stack_info:
            record.stack_info = sanitize_message(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trace_fields() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, service, fields…, exc."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self.service,
        }
        for key, value in _trace_fields().items():
            entry.setdefault(key, value)
        fields = record_fields(record)
        for reserved in ("ts", "level", "logger", "msg"):
            if reserved in fields:
                fields[f"field.{reserved}"] = fields.pop(reserved)
        entry.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = sanitize_message(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``ts level logger: msg key=value …`` for humans at a terminal."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_trace_fields(), **record_fields(record)}
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        line = f"{_timestamp(record)} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        if pairs:
            line += f" {pairs}"
        if record.exc_info and not record.exc_text:
            record.exc_text = sanitize_message(self.formatException(record.exc_info))
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def configure_logging(level: str, fmt: str, service: str, stream: TextIO | None = None) -> logging.Handler:
    """Send all logs to ``stream`` (default stderr) as ``fmt`` ("json" or "text") at ``level``.

    Calling it again replaces the handler it installed before (other handlers are left alone).
    Returns the handler so a caller (or a test) can remove it.
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"unknown log format {fmt!r}: use json or text")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root.addHandler(handler)
    root.setLevel(_level_number(level))
    # Python warnings become log records too, so stderr stays one JSON object per line.
    logging.captureWarnings(True)
    # Probes hit /healthz every few seconds; the access log would drown everything else.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger carrying structured fields into every record it emits."""

    def __init__(self, logger: logging.Logger, fields: Mapping[str, Any]) -> None:
        super().__init__(logger, dict(fields))
        self.fields: dict[str, Any] = dict(fields)

    def bind(self, /, **fields: Any) -> BoundLogger:
        """A new adapter with ``fields`` merged over the current ones (``None`` removes a field)."""
        merged = {**self.fields, **fields}
        return BoundLogger(self.logger, {k: v for k, v in merged.items() if v is not None})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        call_extra = kwargs.get("extra") or {}
        kwargs["extra"] = {FIELDS_ATTR: {**self.fields, **call_extra}}
        return msg, kwargs


def bind(logger: logging.Logger | logging.LoggerAdapter[Any], /, **fields: Any) -> BoundLogger:
    """Bind ``fields`` (kind, namespace, name, revision, trace_id …) to ``logger``.

    Binding a ``BoundLogger`` again merges the new fields over its existing ones.
    """
    if isinstance(logger, BoundLogger):
        return logger.bind(**fields)
    if isinstance(logger, logging.LoggerAdapter):
        base = dict(logger.extra or {})
        inner = logger.logger
        while isinstance(inner, logging.LoggerAdapter):
            inner = inner.logger
        return BoundLogger(inner, base).bind(**fields)
    return BoundLogger(logger, {k: v for k, v in fields.items() if v is not None})


def get_logger(logger_name: str, /, **fields: Any) -> BoundLogger:
    """``bind(logging.getLogger(logger_name), **fields)``; fields may include ``name``."""
    return bind(logging.getLogger(logger_name), **fields)
