"""What every Sluice service process runs on.

- ``settings``: the typed, frozen ``Settings`` read from ``SLUICE_*`` variables; ``describe_settings``.
- ``logging``: JSON log lines, ``bind(logger, kind=…, namespace=…, name=…, revision=…)``, redaction.
- ``redact``: ``redact_url`` and ``sanitize_message`` for anything shown to users.
- ``metrics``: the ``sluice_*`` Prometheus metrics on a per-service registry.
- ``health``: the HTTP server for ``/healthz``, ``/readyz`` (pluggable checks) and ``/metrics``.
- ``tracing``: OpenTelemetry providers and exporters, W3C ``traceparent`` in message headers.
- ``service``: ``ServiceRuntime`` and ``run_service`` — start, signals, graceful stop.
"""

from libs.common.runtime.health import HealthServer
from libs.common.runtime.logging import BoundLogger, bind, configure_logging, get_logger
from libs.common.runtime.metrics import Metrics
from libs.common.runtime.redact import redact_url, sanitize_message
from libs.common.runtime.service import ServiceRuntime, run_service
from libs.common.runtime.settings import Settings, SettingsError, describe_settings
from libs.common.runtime.tracing import (
    Tracing,
    configure_tracing,
    current_trace_id,
    extract_context,
    inject_traceparent,
)

__all__ = [
    "BoundLogger",
    "HealthServer",
    "Metrics",
    "ServiceRuntime",
    "Settings",
    "SettingsError",
    "Tracing",
    "bind",
    "configure_logging",
    "configure_tracing",
    "current_trace_id",
    "describe_settings",
    "extract_context",
    "get_logger",
    "inject_traceparent",
    "redact_url",
    "run_service",
    "sanitize_message",
]
