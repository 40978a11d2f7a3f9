"""Prometheus metrics of a Sluice service, on the service's own registry.

Each service (and each service started inside one test process) owns a ``Metrics`` with its own
``CollectorRegistry``, so nothing is registered globally and two services never collide.

    metrics = Metrics("sluice-source")
    metrics.observe_reconcile("GitRepository", "success", 0.42)
    metrics.event_published("source.artifact", "ok")
    metrics.set_objects("GitRepository", ready="True", count=12)
    body = metrics.render()          # Prometheus text format, served at /metrics

The metric objects are attributes too (``metrics.reconcile_duration`` …) for code that wants
``.labels(...)`` directly. Label values: ``result`` is ``success``/``failure``/``requeue``;
``outcome`` is ``ok``/``error`` for publishing and ``ack``/``nak``/``term`` for consuming;
``ready`` is the Ready condition status ``True``/``False``/``Unknown``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["CONTENT_TYPE", "RECONCILE_BUCKETS", "Metrics", "exponential_buckets"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


def exponential_buckets(start: float, end: float, count: int) -> tuple[float, ...]:
    """``count`` buckets growing by a constant factor from ``start`` to exactly ``end``."""
    if count < 2 or start <= 0 or end <= start:
        raise ValueError("need count >= 2 and 0 < start < end")
    factor = (end / start) ** (1 / (count - 1))
    buckets = [float(f"{start * factor**i:.3g}") for i in range(count - 1)]
    return (*buckets, float(end))


# Like Flux's gotk_reconcile_duration_seconds: from 10 ms to 30 minutes, each bucket ~2x the last.
RECONCILE_BUCKETS = exponential_buckets(0.01, 1800.0, 18)


class Metrics:
    """The metrics every service exports, plus room for its own on ``registry``."""

    def __init__(
        self,
        service: str = "sluice",
        registry: CollectorRegistry | None = None,
        *,
        process_metrics: bool = True,
    ) -> None:
        self.service = service
        own_registry = registry is None
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if own_registry and process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        reg = self.registry
        self.reconcile_duration = Histogram(
            "sluice_reconcile_duration_seconds",
            "Time one reconcile of an object took, by kind and result.",
            ["kind", "result"],
            buckets=RECONCILE_BUCKETS,
            registry=reg,
        )
        self.events_published = Counter(
            "sluice_events_published_total",
            "Events published to JetStream, by event type and outcome.",
            ["event", "outcome"],
            registry=reg,
        )
        self.events_consumed = Counter(
            "sluice_events_consumed_total",
            "Events consumed from JetStream, by event type and outcome (ack, nak, term).",
            ["event", "outcome"],
            registry=reg,
        )
        self.redeliveries = Counter(
            "sluice_redeliveries_total",
            "Messages received again after an earlier delivery was not acknowledged.",
            ["event"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "sluice_dead_letters_total",
            "Messages given up on (terminated or out of deliveries).",
            ["event"],
            registry=reg,
        )
        self.objects = Gauge(
            "sluice_objects",
            "Objects this service reconciles, by kind and Ready status.",
            ["kind", "ready"],
            registry=reg,
        )
        self.service_info = Gauge(
            "sluice_service_info",
            "Always 1; labels identify the service.",
            ["service"],
            registry=reg,
        )
        self.service_info.labels(service=service).set(1)

    def observe_reconcile(self, kind: str, result: str, seconds: float) -> None:
        self.reconcile_duration.labels(kind=kind, result=result).observe(seconds)

    @contextmanager
    def time_reconcile(self, kind: str) -> Iterator[dict[str, str]]:
        """Time a block; set ``outcome["result"]`` inside it (default ``success``, ``failure`` on error)."""
        outcome = {"result": "success"}
        started = time.perf_counter()
        try:
            yield outcome
        except BaseException:
            outcome["result"] = "failure"
            raise
        finally:
            self.observe_reconcile(kind, outcome["result"], time.perf_counter() - started)

    def event_published(self, event: str, outcome: str = "ok") -> None:
        self.events_published.labels(event=event, outcome=outcome).inc()

    def event_consumed(self, event: str, outcome: str) -> None:
        self.events_consumed.labels(event=event, outcome=outcome).inc()

    def redelivered(self, event: str) -> None:
        self.redeliveries.labels(event=event).inc()

    def dead_lettered(self, event: str) -> None:
        self.dead_letters.labels(event=event).inc()

    def set_objects(self, kind: str, ready: str, count: float) -> None:
        self.objects.labels(kind=kind, ready=ready).set(count)

    def render(self) -> bytes:
        """All metrics of this registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
