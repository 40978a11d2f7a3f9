"""The image-update service: ImageUpdateAutomation: rewrites marked manifests in Git and publishes git.commit."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.app import ServiceSpec
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "image_update"


class ImageUpdateSettings(Settings):
    service_name: str = Field("sluice-image-update", description="Name in logs, traces and metrics.")


SPEC = ServiceSpec(
    SERVICE,
    ImageUpdateSettings,
    reconcilers=lambda app: [
        unimplemented(ImageUpdateAutomation, SERVICE),
    ],
)
