"""The build service: renders Kustomizations when their source has a new artifact.

It owns no kind. It consumes `artifact.ready` and `reconcile.request` for Kustomizations and
publishes `build.ready` / `build.failed`. Rendering is not built yet, so for every Kustomization
a trigger concerns it publishes `build.failed` with reason NotImplemented — an honest answer the
apply service turns into the Kustomization's status.
"""

from __future__ import annotations

from pydantic import Field

from libs.common import names
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.app import App, ServiceSpec
from libs.common.bus import Delivery
from libs.common.events import ArtifactReady, BuildFailed, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.reconcile.unimplemented import NOT_IMPLEMENTED
from libs.common.runtime.settings import Settings

SERVICE = "build"


class BuildSettings(Settings):
    service_name: str = Field("sluice-build", description="Name in logs, traces and metrics.")


def _ref(obj: Kustomization) -> ObjectRef:
    return ObjectRef(
        api_version=obj.api_version(),
        kind=obj.KIND,
        namespace=obj.namespace,
        name=obj.name,
        uid=obj.metadata.uid,
    )


async def _not_built(app: App, ks: Kustomization, source: ObjectRef, revision: str) -> None:
    failed = BuildFailed(
        kustomization=_ref(ks),
        source=source,
        revision=revision,
        generation=ks.generation,
        reason=NOT_IMPLEMENTED,
        message="Sluice's build service does not render Kustomizations yet",
    )
    await app.bus.publish(failed, msg_id=f"build-{ks.namespace}/{ks.name}@{ks.generation}@{revision}")


async def setup(app: App) -> None:
    async def on_artifact(event: ArtifactReady, delivery: Delivery) -> None:
        items, _ = await app.kube.list_objects(Kustomization.api_version(), Kustomization.KIND)
        for raw in items:
            ks = Kustomization.model_validate(raw)
            ref = ks.spec.source_ref
            if (
                ref.kind == event.source.kind
                and ref.name == event.source.name
                and ((ref.namespace or ks.namespace) == event.source.namespace)
            ):
                await _not_built(app, ks, event.source, event.revision)

    async def on_request(request: ReconcileRequest, delivery: Delivery) -> None:
        raw = await app.kube.get(
            Kustomization.api_version(), Kustomization.KIND, request.object.name, request.object.namespace
        )
        if raw is None:
            return
        ks = Kustomization.model_validate(raw)
        ref = ks.spec.source_ref
        source = ObjectRef(
            api_version=ref.api_version or "source.toolkit.fluxcd.io/v1",
            kind=ref.kind,
            namespace=ref.namespace or ks.namespace,
            name=ref.name,
        )
        await _not_built(app, ks, source, "")

    app.bus.subscribe(
        f"{SERVICE}-artifact-ready", subj.family_filter(names.ARTIFACT_READY), ArtifactReady, on_artifact
    )
    app.bus.subscribe(
        f"{SERVICE}-reconcile-kustomization",
        subj.family_filter(names.RECONCILE_REQUEST, Kustomization.KIND),
        ReconcileRequest,
        on_request,
    )


SPEC = ServiceSpec(SERVICE, BuildSettings, setup=setup)
