"""JSON log lines carry bound object keys and never carry secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from libs.common.runtime.logging import bind, configure_logging, get_logger
from libs.common.runtime.tracing import Tracing, configure_tracing

pytestmark = pytest.mark.unit


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """configure_logging onto a buffer, restoring the root logger afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_the_standard_and_bound_fields(stream: io.StringIO) -> None:
    configure_logging("info", "json", "sluice-source", stream=stream)
    log = bind(
        logging.getLogger("services.source"), kind="GitRepository", namespace="flux-system", name="podinfo"
    )
    log = log.bind(revision="main@sha1:0123abcd")
    log.info("stored artifact %s", "sha256:ff", extra={"size": 1024})
    log.debug("hidden at info level")

    (entry,) = lines(stream)
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]
    assert entry["level"] == "info"
    assert entry["logger"] == "services.source"
    assert entry["msg"] == "stored artifact sha256:ff"
    assert entry["service"] == "sluice-source"
    assert entry["kind"] == "GitRepository"
    assert entry["namespace"] == "flux-system"
    assert entry["name"] == "podinfo"
    assert entry["revision"] == "main@sha1:0123abcd"
    assert entry["size"] == 1024
    assert list(entry)[:5] == ["ts", "level", "logger", "msg", "service"]


def test_rebinding_keeps_earlier_fields_and_does_not_change_the_original(stream: io.StringIO) -> None:
    configure_logging("debug", "json", "svc", stream=stream)
    base = get_logger("x", kind="Kustomization", name="apps")
    child = bind(base, revision="r1", name="infra")
    base.info("base")
    child.info("child")
    first, second = lines(stream)
    assert first["name"] == "apps" and "revision" not in first
    assert second["name"] == "infra" and second["revision"] == "r1" and second["kind"] == "Kustomization"


def test_secrets_in_fields_messages_and_exceptions_are_redacted(stream: io.StringIO) -> None:
    configure_logging("info", "json", "svc", stream=stream)
    log = get_logger("x", kind="HelmRepository", url="https://bot:hunter2@charts.example.com/")
    try:
        raise RuntimeError("fetch https://u:topsecret@host/x?token=tok123 failed")
    except RuntimeError:
        log.exception(
            "fetch %s failed",
            "https://u:topsecret@host/x?token=tok123",
            extra={"password": "pw-1", "headers": {"Authorization": "Bearer abc.def"}, "bearer": "b-1"},
        )
    logging.getLogger("plain").warning("plain", extra={"client_secret": "cs-1"})

    output = stream.getvalue()
    for secret in ("hunter2", "topsecret", "tok123", "pw-1", "abc.def", "b-1", "cs-1"):
        assert secret not in output
    error, plain = lines(stream)
    assert error["msg"] == "fetch https://***@host/x?token=*** failed"
    assert error["url"] == "https://***@charts.example.com/"
    assert error["password"] == "***"
    assert error["headers"] == {"Authorization": "***"}
    assert "RuntimeError: fetch https://***@host/x?token=*** failed" in error["exc"]
    assert error["level"] == "error"
    assert plain["client_secret"] == "***"


def test_records_inside_a_span_carry_the_trace_id(stream: io.StringIO) -> None:
    configure_logging("info", "json", "svc", stream=stream)
    tracing = Tracing(configure_tracing("svc", "none"))
    with tracing.span("reconcile") as span:
        get_logger("x").info("inside")
    get_logger("x").info("outside")
    inside, outside = lines(stream)
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in outside


def test_field_names_that_clash_with_record_attributes_are_safe(stream: io.StringIO) -> None:
    configure_logging("info", "json", "svc", stream=stream)
    get_logger("x", name="podinfo", module="m", msg="field").info("message")
    (entry,) = lines(stream)
    assert entry["name"] == "podinfo"
    assert entry["module"] == "m"
    assert entry["msg"] == "message"
    assert entry["field.msg"] == "field"


def test_text_format_is_one_readable_line(stream: io.StringIO) -> None:
    configure_logging("info", "text", "svc", stream=stream)
    get_logger("services.apply", kind="Kustomization", name="apps").info("applied", extra={"token": "t0k"})
    line = stream.getvalue().strip()
    assert "info" in line and "services.apply: applied" in line
    assert "kind=Kustomization name=apps token=***" in line
    assert "t0k" not in line


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("info", "json", "svc", stream=other)
    configure_logging("info", "json", "svc", stream=stream)
    get_logger("x").info("once")
    assert other.getvalue() == ""
    assert len(lines(stream)) == 1


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "json", "svc", stream=io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", "svc", stream=io.StringIO())


def test_a_mismatched_format_string_is_logged_not_raised(stream: io.StringIO) -> None:
    handler = configure_logging("info", "json", "svc", stream=stream)
    # Straight to our handler: pytest's own capture handler would raise on this record first.
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "two %s %s", ("https://u:p@h/",), None)
    handler.handle(record)
    (entry,) = lines(stream)
    assert entry["msg"].startswith("two %s %s (unformattable log arguments:")
    assert "u:p@" not in entry["msg"]
