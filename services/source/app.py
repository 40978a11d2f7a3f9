"""The source service: GitRepository, OCIRepository, HelmRepository, HelmChart and Bucket: fetches sources and publishes artifact.ready."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.source.bucket import Bucket
from libs.common.api.source.gitrepository import GitRepository
from libs.common.api.source.helmchart import HelmChart
from libs.common.api.source.helmrepository import HelmRepository
from libs.common.api.source.ocirepository import OCIRepository
from libs.common.app import App, ServiceSpec
from libs.common.artifacts import artifact_app, store_from_url
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "source"


class SourceSettings(Settings):
    service_name: str = Field("sluice-source", description="Name in logs, traces and metrics.")
    artifact_addr: str = Field(
        "0.0.0.0:9090", description="host:port where artifacts are served over HTTP (status.artifact.url)."
    )


async def setup(app: App) -> None:
    """Serve the artifact store over HTTP, as Flux's source-controller does on :9090."""
    store = store_from_url(app.settings.artifact_store)
    url = await app.serve_http(artifact_app(store), app.settings.artifact_addr)
    app.runtime.log.info("serving artifacts", extra={"url": url})


SPEC = ServiceSpec(
    SERVICE,
    SourceSettings,
    reconcilers=lambda app: [
        unimplemented(GitRepository, SERVICE),
        unimplemented(OCIRepository, SERVICE),
        unimplemented(HelmRepository, SERVICE),
        unimplemented(HelmChart, SERVICE),
        unimplemented(Bucket, SERVICE),
    ],
    setup=setup,
)
