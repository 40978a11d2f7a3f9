"""The sluice_* metrics live on a per-service registry and render in the Prometheus text format."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from libs.common.runtime.metrics import RECONCILE_BUCKETS, Metrics, exponential_buckets

pytestmark = pytest.mark.unit


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def test_observations_show_up_in_the_rendered_text() -> None:
    metrics = Metrics("sluice-source")
    metrics.observe_reconcile("GitRepository", "success", 0.25)
    metrics.event_published("source.artifact", "ok")
    metrics.event_consumed("source.artifact", "ack")
    metrics.event_consumed("source.artifact", "ack")
    metrics.redelivered("source.artifact")
    metrics.dead_lettered("source.artifact")
    metrics.set_objects("GitRepository", ready="True", count=3)

    got = samples(metrics)
    labels = frozenset({("kind", "GitRepository"), ("result", "success")})
    assert got[("sluice_reconcile_duration_seconds_count", labels)] == 1
    assert got[("sluice_reconcile_duration_seconds_sum", labels)] == 0.25
    assert got[("sluice_reconcile_duration_seconds_bucket", labels | {("le", "0.351")})] == 1
    assert got[("sluice_reconcile_duration_seconds_bucket", labels | {("le", "0.172")})] == 0
    event_ok = frozenset({("event", "source.artifact"), ("outcome", "ok")})
    assert got[("sluice_events_published_total", event_ok)] == 1
    event_ack = frozenset({("event", "source.artifact"), ("outcome", "ack")})
    assert got[("sluice_events_consumed_total", event_ack)] == 2
    assert got[("sluice_redeliveries_total", frozenset({("event", "source.artifact")}))] == 1
    assert got[("sluice_dead_letters_total", frozenset({("event", "source.artifact")}))] == 1
    assert got[("sluice_objects", frozenset({("kind", "GitRepository"), ("ready", "True")}))] == 3
    assert got[("sluice_service_info", frozenset({("service", "sluice-source")}))] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in got)


def test_time_reconcile_records_failure_when_the_block_raises() -> None:
    metrics = Metrics("svc")
    with metrics.time_reconcile("Kustomization") as outcome:
        outcome["result"] = "requeue"
    with pytest.raises(RuntimeError), metrics.time_reconcile("Kustomization"):
        raise RuntimeError("apply failed")
    got = samples(metrics)
    for result in ("requeue", "failure"):
        key = (
            "sluice_reconcile_duration_seconds_count",
            frozenset({("kind", "Kustomization"), ("result", result)}),
        )
        assert got[key] == 1


def test_two_services_in_one_process_do_not_share_metrics() -> None:
    first, second = Metrics("a"), Metrics("b")
    first.event_published("x", "ok")
    assert "sluice_events_published_total{" in first.render().decode()
    assert "sluice_events_published_total{" not in second.render().decode()


def test_a_given_registry_is_used_as_is() -> None:
    registry = CollectorRegistry()
    metrics = Metrics("svc", registry)
    metrics.set_objects("Bucket", "False", 1)
    assert registry.get_sample_value("sluice_objects", {"kind": "Bucket", "ready": "False"}) == 1
    assert registry.get_sample_value("process_cpu_seconds_total") is None


def test_reconcile_buckets_span_10ms_to_30min_like_flux() -> None:
    assert RECONCILE_BUCKETS[0] == 0.01
    assert RECONCILE_BUCKETS[-1] == 1800.0
    assert list(RECONCILE_BUCKETS) == sorted(set(RECONCILE_BUCKETS))
    ratios = [b / a for a, b in itertools.pairwise(RECONCILE_BUCKETS)]
    assert all(1.9 < r < 2.2 for r in ratios)
    with pytest.raises(ValueError):
        exponential_buckets(1, 1, 3)
