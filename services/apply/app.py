"""The apply service: Kustomization and HelmRelease: applies rendered bundles and publishes apply.done.

The Kustomization controller does the work (services/apply/kustomization.py); the bus handlers
here only trigger it:

- `apply-build-ready` / `apply-build-failed`: a new build outcome → a `reconcile.request` for that
  Kustomization, so the controller (lease, status, events) applies it at once.
- `apply-apply-done`: a Kustomization became Ready → a `reconcile.request` (reason `dependency`)
  for each Kustomization that depends on it and is not Ready, so dependency chains move on events,
  not on a fixed requeue.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from libs.common import names
from libs.common.api import meta
from libs.common.api.helm.helmrelease import HelmRelease
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.app import App, ServiceSpec
from libs.common.artifacts import DEFAULT_MAX_BYTES
from libs.common.bus import Delivery
from libs.common.events import ApplyDone, BuildFailed, BuildReady, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings
from services.apply.applier import Applier
from services.apply.kustomization import KustomizationReconciler

SERVICE = "apply"
KIND = Kustomization.KIND


class ApplySettings(Settings):
    service_name: str = Field("sluice-apply", description="Name in logs, traces and metrics.")
    bundle_max_bytes: int = Field(
        DEFAULT_MAX_BYTES,
        gt=0,
        description="Largest build bundle (and manifests.yaml inside it) accepted, in bytes.",
    )
    apply_concurrency: int = Field(
        8, gt=0, description="Objects the service dry-runs and applies in parallel (over all Kustomizations)."
    )
    health_poll_interval: float = Field(
        0.5, gt=0, description="Seconds between two looks at the health-checked objects."
    )


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(api_version=Kustomization.api_version(), kind=KIND, namespace=namespace, name=name)


def _reconcilers(app: App) -> list[Any]:
    settings: ApplySettings = app.settings
    applier = Applier(app.kube, concurrency=settings.apply_concurrency, poll=settings.health_poll_interval)
    kustomizations = KustomizationReconciler(
        bus=app.bus,
        kube=app.kube,
        max_bundle_bytes=settings.bundle_max_bytes,
        applier=applier,
        service=SERVICE,
    )
    return [kustomizations.reconciler(), unimplemented(HelmRelease, SERVICE)]


async def _request(app: App, namespace: str, name: str, reason: str, msg_id: str) -> None:
    payload = ReconcileRequest(object=_ref(namespace, name), reason=reason)  # type: ignore[arg-type]
    await app.bus.publish(payload, msg_id=msg_id)


async def setup(app: App) -> None:
    settings: ApplySettings = app.settings

    async def on_build_ready(build: BuildReady, delivery: Delivery) -> None:
        ref = build.kustomization
        # Not `generation=`: the controller skips `changed` requests for a generation already
        # Ready, and a new build of the same generation (a new source revision) must be applied.
        await _request(app, ref.namespace, ref.name, "changed", f"{ref.key}@build-{delivery.stream_seq}")

    async def on_build_failed(build: BuildFailed, delivery: Delivery) -> None:
        ref = build.kustomization
        await _request(app, ref.namespace, ref.name, "changed", f"{ref.key}@build-{delivery.stream_seq}")

    async def on_apply_done(done: ApplyDone, delivery: Delivery) -> None:
        if not done.ready:
            return
        # The status this apply.done announces is already written (see _persist_ready).
        dep = done.object
        items, _ = await app.kube.list_objects(
            Kustomization.api_version(), KIND, settings.watch_namespace or None
        )
        for raw in items:
            md = raw.get("metadata") or {}
            namespace = md.get("namespace", "")
            deps = (raw.get("spec") or {}).get("dependsOn") or []
            if not any(
                d.get("name") == dep.name and (d.get("namespace") or namespace) == dep.namespace for d in deps
            ):
                continue
            status = raw.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == meta.READY), None)
            if (
                ready is not None
                and ready.get("status") == meta.CONDITION_TRUE
                and status.get("observedGeneration") == md.get("generation")
            ):
                continue
            await _request(
                app,
                namespace,
                md.get("name", ""),
                "dependency",
                f"{KIND}/{namespace}/{md.get('name')}@dep-{delivery.stream_seq}",
            )

    app.bus.subscribe(
        f"{SERVICE}-build-ready", subj.family_filter(names.BUILD_READY, KIND), BuildReady, on_build_ready
    )
    app.bus.subscribe(
        f"{SERVICE}-build-failed", subj.family_filter(names.BUILD_FAILED, KIND), BuildFailed, on_build_failed
    )
    app.bus.subscribe(
        f"{SERVICE}-apply-done", subj.family_filter(names.APPLY_DONE, KIND), ApplyDone, on_apply_done
    )


SPEC = ServiceSpec(SERVICE, ApplySettings, reconcilers=_reconcilers, setup=setup)
