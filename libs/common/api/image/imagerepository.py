"""ImageRepository (`image.toolkit.fluxcd.io/v1`, also served as `v1beta2`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.duration import parse_duration
from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_IMAGES,
    READY_COLUMN,
    STATUS_COLUMN,
    AccessFrom,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    LocalObjectReference,
    PrinterColumn,
    Time,
    Timeout,
    column,
)

IMAGE_GROUP = "image.toolkit.fluxcd.io"
DEFAULT_EXCLUSION_LIST: tuple[str, ...] = ("^.*\\.sig$",)


class ImageRepositorySpec(FluxModel):
    image: str
    """Repository without scheme or tag, e.g. `ghcr.io/stefanprodan/podinfo`."""
    interval: Duration
    timeout: Timeout | None = None
    """Scan timeout; defaults to `interval`."""
    secret_ref: LocalObjectReference | None = None
    """A `kubernetes.io/dockerconfigjson` Secret with registry credentials."""
    proxy_secret_ref: LocalObjectReference | None = None
    service_account_name: str | None = Field(default=None, max_length=253)
    cert_secret_ref: LocalObjectReference | None = None
    suspend: bool | None = None
    access_from: AccessFrom | None = None
    """Which namespaces' ImagePolicies may refer to this repository."""
    exclusion_list: list[str] = Field(default=list(DEFAULT_EXCLUSION_LIST), max_length=25)
    """Regular expressions of tags that are not stored (cosign signatures by default)."""
    provider: Literal["generic", "aws", "azure", "gcp"] = "generic"
    insecure: bool | None = None

    def timeout_seconds(self) -> float:
        """`timeout` or `interval`, at least one second (as Flux)."""
        return max(1.0, parse_duration(self.timeout or self.interval))


class ScanResult(FluxModel):
    """Summary of the last registry scan."""

    revision: str | None = None
    """A stable hash of the scanned tags."""
    tag_count: int
    scan_time: Time | None = None
    latest_tags: list[str] | None = None
    """The first 10 tags in descending alphabetical order."""


class ImageRepositoryStatus(FluxStatus):
    canonical_image_name: str | None = None
    """The image with the implied parts explicit, e.g. `docker.io/library/alpine`."""
    last_scan_result: ScanResult | None = None
    observed_exclusion_list: list[str] | None = None


class ImageRepository(FluxObject):
    """A container image repository whose tags are scanned periodically."""

    GROUP: ClassVar[str] = IMAGE_GROUP
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ImageRepository"
    PLURAL: ClassVar[str] = "imagerepositories"
    SINGULAR: ClassVar[str] = "imagerepository"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("imgrepo", "imagerepo")
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_IMAGES
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Image", ".spec.image"),
        column("Tags", ".status.lastScanResult.tagCount"),
        READY_COLUMN,
        STATUS_COLUMN,
        column("Last scan", ".status.lastScanResult.scanTime", priority=1),
        AGE_COLUMN,
    )

    spec: ImageRepositorySpec
    status: ImageRepositoryStatus = Field(
        default_factory=ImageRepositoryStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )


class ImageRepositoryV1beta2(ImageRepository):
    """ImageRepository as served by `image.toolkit.fluxcd.io/v1beta2` (same schema as v1)."""

    VERSION: ClassVar[str] = "v1beta2"
    STORAGE: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Last scan", ".status.lastScanResult.scanTime"),
        column("Tags", ".status.lastScanResult.tagCount"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    )
