"""OpenTelemetry traces across services: W3C ``traceparent`` rides in NATS message headers.

    tracing = Tracing.configure("sluice-source", settings.otel_exporter)
    with tracing.span("publish source.artifact", kind=SpanKind.PRODUCER) as span:
        headers = inject_traceparent({"Nats-Msg-Id": msg_id})      # adds traceparent
        await bus.publish(subject, payload, headers=headers)

    # in the consuming service
    with tracing.span("handle source.artifact", context=extract_context(msg.headers)):
        ...                                                         # same trace id, child span

Each ``Tracing`` holds its own SDK ``TracerProvider``, so several services in one test process keep
separate resources and exporters; only ``ServiceRuntime`` running a real process also installs its
provider globally. Exporters (``SLUICE_OTEL_EXPORTER``):

- ``none``: spans are created (so trace context still propagates) but not exported;
- ``console``: one JSON document per span on stdout (the SDK's console exporter);
- ``file:PATH``: ``FileSpanExporter`` appends one JSON object per line — trace_id, span_id,
  parent_span_id, name, service, start, end, attributes, status — safe for several processes
  sharing the file; ``read_spans(PATH)`` reads it back;
- ``otlp``: the OTLP exporter, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables;
  needs the ``opentelemetry-exporter-otlp`` package.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "FileSpanExporter",
    "Tracing",
    "TracingConfigError",
    "configure_tracing",
    "current_trace_id",
    "extract_context",
    "inject_traceparent",
    "read_spans",
]

INSTRUMENTATION_NAME = "sluice"
_PROPAGATOR = TraceContextTextMapPropagator()


class TracingConfigError(ValueError):
    """The trace exporter setting cannot be honoured."""


# -- propagation ---------------------------------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Header lookup ignoring case: NATS headers keep whatever case the publisher used."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == lowered), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


def inject_traceparent(headers: dict[str, str], context: Context | None = None) -> dict[str, str]:
    """Add ``traceparent`` (and ``tracestate``) for ``context`` (default: the current span) to ``headers``.

    Returns the same dict. Without a valid span nothing is added.
    """
    _PROPAGATOR.inject(headers, context=context)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The remote parent carried by ``headers`` (an empty context when there is none)."""
    return _PROPAGATOR.extract(headers or {}, getter=_GETTER)


def current_trace_id() -> str | None:
    """The 32-hex-digit trace id of the current span, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


# -- the file exporter ---------------------------------------------------------------------------


def _rfc3339(nanos: int | None) -> str | None:
    if nanos is None:
        return None
    moment = datetime.fromtimestamp(nanos / 1e9, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Sequence):
        return [_json_value(v) for v in value]
    return str(value)


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The JSON object ``FileSpanExporter`` writes for one finished span."""
    context = span.get_span_context()
    parent = span.parent
    duration_ms = None
    if span.start_time is not None and span.end_time is not None:
        duration_ms = round((span.end_time - span.start_time) / 1e6, 3)
    status: dict[str, Any] = {"code": span.status.status_code.name}
    if span.status.description:
        status["description"] = span.status.description
    return {
        "trace_id": format(context.trace_id, "032x") if context is not None else None,
        "span_id": format(context.span_id, "016x") if context is not None else None,
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start": _rfc3339(span.start_time),
        "end": _rfc3339(span.end_time),
        "duration_ms": duration_ms,
        "attributes": {k: _json_value(v) for k, v in (span.attributes or {}).items()},
        "status": status,
        "events": [
            {
                "name": event.name,
                "time": _rfc3339(event.timestamp),
                "attributes": {k: _json_value(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    }


class FileSpanExporter(SpanExporter):
    """Appends one JSON object per span and line to ``path``.

    Several processes may share the file: each batch is written with one ``write`` on an
    ``O_APPEND`` descriptor while holding an exclusive ``flock``, so lines never interleave.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans).encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(self._fd, view)
                        view = view[written:]
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def read_spans(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every span written to a ``file:`` exporter's file (a missing file has none)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    spans: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            spans.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return spans


# -- providers -----------------------------------------------------------------------------------


def _otlp_exporter() -> SpanExporter:
    for module_name in (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    raise TracingConfigError(
        "SLUICE_OTEL_EXPORTER=otlp needs the OTLP exporter: pip install opentelemetry-exporter-otlp"
    )


def configure_tracing(
    service_name: str, exporter: str, *, replica_id: str = "", set_global: bool = False
) -> TracerProvider:
    """An SDK ``TracerProvider`` for ``service_name`` exporting to ``exporter``.

    ``exporter`` is ``none``, ``console``, ``otlp`` or ``file:PATH``. The provider is returned,
    not installed globally, unless ``set_global`` is true (once per process).
    """
    attributes: dict[str, str] = {"service.name": service_name, "service.namespace": "sluice"}
    if replica_id:
        attributes["service.instance.id"] = replica_id
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter == "none":
        pass
    elif exporter == "console":
        provider.add_span_processor(
            SimpleSpanProcessor(ConsoleSpanExporter(service_name=service_name, out=sys.stdout))
        )
    elif exporter.startswith("file:") and len(exporter) > len("file:"):
        # Synchronous export: the line is in the file when the span ends, which tests rely on.
        provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(exporter[len("file:") :])))
    elif exporter == "otlp":
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    else:
        raise TracingConfigError(f"unknown trace exporter {exporter!r}: use none, console, otlp or file:PATH")
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


class Tracing:
    """A tracer bound to one provider, with a span helper that accepts a remote parent."""

    def __init__(
        self, provider: trace.TracerProvider | None = None, instrumentation: str = INSTRUMENTATION_NAME
    ) -> None:
        self.provider = provider if provider is not None else trace.get_tracer_provider()
        self.tracer = self.provider.get_tracer(instrumentation)
        self._owned = False

    @classmethod
    def configure(
        cls, service_name: str, exporter: str, *, replica_id: str = "", set_global: bool = False
    ) -> Tracing:
        tracing = cls(configure_tracing(service_name, exporter, replica_id=replica_id, set_global=set_global))
        tracing._owned = True
        return tracing

    @contextmanager
    def span(
        self,
        name: str,
        context: Context | Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Iterator[Span]:
        """Start a span and make it current for the block.

        ``context`` is the parent: a ``Context`` (e.g. from ``extract_context``), message headers
        carrying ``traceparent``, or None for the current span. An exception escaping the block is
        recorded and marks the span as an error.
        """
        if context is not None and not isinstance(context, Context):
            context = extract_context(context)
        with self.tracer.start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes={k: _attribute(v) for k, v in (attributes or {}).items() if v is not None},
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            yield span

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        if isinstance(self.provider, TracerProvider):
            return self.provider.force_flush(timeout_millis)
        return True

    def shutdown(self) -> None:
        """Flush and close the exporters of a provider made by ``configure`` (others are left alone)."""
        if self._owned and isinstance(self.provider, TracerProvider):
            self.provider.shutdown()


def _attribute(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [v if isinstance(v, str | int | float | bool) else str(v) for v in value]
    return str(value)
