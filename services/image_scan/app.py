"""The image-scan service: ImageRepository and ImagePolicy: scans registries and publishes image.tag."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from pydantic import Field

from libs.common.app import App, ServiceSpec
from libs.common.artifacts import store_from_url
from libs.common.reconcile import Reconciler
from libs.common.runtime.settings import Settings
from services.image_scan.scanner import ImageScanner, TagStore

SERVICE = "image_scan"


class ImageScanSettings(Settings):
    service_name: str = Field("sluice-image-scan", description="Name in logs, traces and metrics.")


def scanner(app: App) -> ImageScanner:
    """The app's one ImageScanner (tag store, registry auth cache, request metric)."""
    requests = Counter(
        "sluice_registry_requests_total",
        "HTTP requests image-scan made to registries, by purpose (tags, manifest, token) and outcome "
        "(HTTP status, error, timeout).",
        ["what", "outcome"],
        registry=app.runtime.metrics.registry,
    )
    return ImageScanner(
        kube=app.kube,
        bus=app.bus,
        tags=TagStore(store_from_url(app.settings.artifact_store)),
        observe=lambda what, outcome: requests.labels(what, outcome).inc(),
        namespace=app.settings.watch_namespace or None,
    )


def reconcilers(app: App) -> list[Reconciler[Any]]:
    shared = app.shared(scanner)
    return [shared.repository_reconciler(), shared.policy_reconciler()]


SPEC = ServiceSpec(SERVICE, ImageScanSettings, reconcilers=reconcilers)
