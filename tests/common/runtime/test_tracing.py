"""Traces: the file exporter, traceparent through a headers dict, separate providers per service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from libs.common.runtime.tracing import (
    FileSpanExporter,
    Tracing,
    TracingConfigError,
    configure_tracing,
    current_trace_id,
    extract_context,
    inject_traceparent,
    read_spans,
)

pytestmark = pytest.mark.unit


def test_trace_id_survives_headers_between_two_services(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    source = Tracing.configure("sluice-source", f"file:{spans_file}", replica_id="source-0")
    build = Tracing.configure("sluice-build", f"file:{spans_file}")
    try:
        with source.span(
            "publish source.artifact", kind=SpanKind.PRODUCER, attributes={"kind": "GitRepository"}
        ):
            trace_id = current_trace_id()
            headers = inject_traceparent({"Nats-Msg-Id": "abc"})
        assert current_trace_id() is None
        assert headers["Nats-Msg-Id"] == "abc"
        assert headers["traceparent"].split("-")[1] == trace_id

        # The consumer sees the headers only (NATS may hand them back with other casing).
        received = {"Traceparent": headers["traceparent"]}
        with build.span("handle source.artifact", context=extract_context(received), kind=SpanKind.CONSUMER):
            assert current_trace_id() == trace_id
            with build.span("render"):
                forwarded = inject_traceparent({})
        with source.span("handle build.rendered", context=forwarded):
            pass
    finally:
        source.shutdown()
        build.shutdown()

    spans = {span["name"]: span for span in read_spans(spans_file)}
    assert set(spans) == {
        "publish source.artifact",
        "handle source.artifact",
        "render",
        "handle build.rendered",
    }
    assert {span["trace_id"] for span in spans.values()} == {trace_id}
    publish, handle = spans["publish source.artifact"], spans["handle source.artifact"]
    assert publish["service"] == "sluice-source" and handle["service"] == "sluice-build"
    assert publish["parent_span_id"] is None
    assert handle["parent_span_id"] == publish["span_id"]
    assert spans["render"]["parent_span_id"] == handle["span_id"]
    assert spans["handle build.rendered"]["parent_span_id"] == spans["render"]["span_id"]
    assert publish["kind"] == "PRODUCER" and handle["kind"] == "CONSUMER"
    assert publish["attributes"] == {"kind": "GitRepository"}
    assert publish["status"] == {"code": "UNSET"}
    assert publish["start"].endswith("Z") and publish["start"] <= publish["end"]
    assert len(publish["span_id"]) == 16 and len(trace_id or "") == 32


def test_an_exception_marks_the_span_as_failed(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    tracing = Tracing.configure("svc", f"file:{spans_file}")
    with pytest.raises(ValueError), tracing.span("reconcile"):
        raise ValueError("bad manifest")
    tracing.shutdown()
    (span,) = read_spans(spans_file)
    assert span["status"]["code"] == StatusCode.ERROR.name
    assert "bad manifest" in span["status"]["description"]
    assert span["events"][0]["name"] == "exception"


def test_no_parent_in_headers_starts_a_new_trace() -> None:
    tracing = Tracing(configure_tracing("svc", "none"))
    assert extract_context({}) == extract_context(None)
    with tracing.span("handle", context={"Nats-Msg-Id": "x"}) as span:
        assert span.get_span_context().is_valid
        assert span.parent is None  # type: ignore[attr-defined]
    assert inject_traceparent({}) == {}


def test_providers_are_separate_and_not_global(tmp_path: Path) -> None:
    before = trace.get_tracer_provider()
    first = configure_tracing("a", f"file:{tmp_path / 'a.jsonl'}")
    second = configure_tracing("b", f"file:{tmp_path / 'b.jsonl'}")
    assert trace.get_tracer_provider() is before
    with Tracing(first).span("one"), Tracing(second).span("two"):
        pass
    first.shutdown()
    second.shutdown()
    assert [s["name"] for s in read_spans(tmp_path / "a.jsonl")] == ["one"]
    assert [s["name"] for s in read_spans(tmp_path / "b.jsonl")] == ["two"]


def test_console_exporter_prints_spans(capsys: pytest.CaptureFixture[str]) -> None:
    tracing = Tracing.configure("svc-console", "console")
    with tracing.span("printed"):
        pass
    tracing.shutdown()
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "printed"


def test_unknown_or_unavailable_exporters_are_clear_errors() -> None:
    with pytest.raises(TracingConfigError, match="unknown trace exporter"):
        configure_tracing("svc", "zipkin")
    try:
        import opentelemetry.exporter.otlp  # noqa: F401
    except ImportError:
        with pytest.raises(TracingConfigError, match="opentelemetry-exporter-otlp"):
            configure_tracing("svc", "otlp")
    else:
        configure_tracing("svc", "otlp").shutdown()


def test_read_spans_skips_torn_lines_and_missing_files(tmp_path: Path) -> None:
    assert read_spans(tmp_path / "absent.jsonl") == []
    path = tmp_path / "spans.jsonl"
    path.write_text('{"name": "a"}\n{"name": \n\n')
    assert read_spans(path) == [{"name": "a"}]


def test_exporter_after_shutdown_reports_failure(tmp_path: Path) -> None:
    exporter = FileSpanExporter(tmp_path / "nested" / "spans.jsonl")
    assert (tmp_path / "nested" / "spans.jsonl").exists()
    exporter.shutdown()
    assert exporter.export([]).name == "FAILURE"
