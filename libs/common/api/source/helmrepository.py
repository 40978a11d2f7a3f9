"""HelmRepository (`source.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_SOURCES,
    READY_COLUMN,
    STATUS_COLUMN,
    SUBSTITUTE_DISABLED,
    AccessFrom,
    Artifact,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    LocalObjectReference,
    PrinterColumn,
    Timeout,
    column,
)
from libs.common.api.source.gitrepository import SOURCE_GROUP, SOURCE_VERSION


class HelmRepositorySpec(FluxModel):
    url: str = Field(pattern=r"^(http|https|oci)://.*$")
    secret_ref: LocalObjectReference | None = None
    cert_secret_ref: LocalObjectReference | None = None
    pass_credentials: bool | None = None
    """Send credentials also to chart hosts that differ from the index host."""
    interval: Duration | None = None
    """Index refresh period; ignored for `type: oci`."""
    insecure: bool | None = None
    """Allow plain HTTP (OCI repositories only)."""
    timeout: Timeout = "60s"
    suspend: bool | None = None
    access_from: AccessFrom | None = None
    type: Literal["default", "oci"] | None = None
    """`oci` makes the object a static holder of URL and credentials (no artifact)."""
    provider: Literal["generic", "aws", "azure", "gcp"] = "generic"


class HelmRepositoryStatus(FluxStatus):
    url: str | None = None
    artifact: Artifact | None = None


class HelmRepository(FluxObject):
    """A Helm chart repository whose index is fetched into an artifact."""

    GROUP: ClassVar[str] = SOURCE_GROUP
    VERSION: ClassVar[str] = SOURCE_VERSION
    KIND: ClassVar[str] = "HelmRepository"
    PLURAL: ClassVar[str] = "helmrepositories"
    SINGULAR: ClassVar[str] = "helmrepository"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("helmrepo",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_SOURCES
    CRD_ANNOTATIONS: ClassVar[dict[str, str]] = SUBSTITUTE_DISABLED
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("URL", ".spec.url"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    )

    spec: HelmRepositorySpec
    status: HelmRepositoryStatus = Field(
        default_factory=HelmRepositoryStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
