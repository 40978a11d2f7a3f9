"""The image-scan service: ImageRepository and ImagePolicy: scans registries and publishes image.tag."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.image.imagepolicy import ImagePolicy
from libs.common.api.image.imagerepository import ImageRepository
from libs.common.app import ServiceSpec
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "image_scan"


class ImageScanSettings(Settings):
    service_name: str = Field("sluice-image-scan", description="Name in logs, traces and metrics.")


SPEC = ServiceSpec(
    SERVICE,
    ImageScanSettings,
    reconcilers=lambda app: [
        unimplemented(ImageRepository, SERVICE),
        unimplemented(ImagePolicy, SERVICE),
    ],
)
