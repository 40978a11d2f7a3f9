"""The apply service: Kustomization and HelmRelease: applies rendered bundles and publishes apply.done."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.helm.helmrelease import HelmRelease
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.app import ServiceSpec
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "apply"


class ApplySettings(Settings):
    service_name: str = Field("sluice-apply", description="Name in logs, traces and metrics.")


SPEC = ServiceSpec(
    SERVICE,
    ApplySettings,
    reconcilers=lambda app: [
        unimplemented(Kustomization, SERVICE),
        unimplemented(HelmRelease, SERVICE),
    ],
)
