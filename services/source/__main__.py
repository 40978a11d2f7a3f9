"""The source service: GitRepository, OCIRepository, HelmRepository, HelmChart and Bucket: fetches sources and publishes artifact.ready."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.source.bucket import Bucket
from libs.common.api.source.gitrepository import GitRepository
from libs.common.api.source.helmchart import HelmChart
from libs.common.api.source.helmrepository import HelmRepository
from libs.common.api.source.ocirepository import OCIRepository
from libs.common.app import run
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "source"


class SourceSettings(Settings):
    service_name: str = Field("sluice-source", description="Name in logs, traces and metrics.")


def main() -> None:
    run(
        SourceSettings,
        SERVICE,
        reconcilers=[
            unimplemented(GitRepository, SERVICE),
            unimplemented(OCIRepository, SERVICE),
            unimplemented(HelmRepository, SERVICE),
            unimplemented(HelmChart, SERVICE),
            unimplemented(Bucket, SERVICE),
        ],
    )


if __name__ == "__main__":
    main()
