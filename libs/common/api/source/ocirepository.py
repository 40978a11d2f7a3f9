"""OCIRepository (`source.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_SOURCES,
    READY_COLUMN,
    STATUS_COLUMN,
    SUBSTITUTE_DISABLED,
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


class OCIRepositoryRef(FluxModel):
    """The OCI reference to pull; precedence tag < semver < digest."""

    digest: str | None = None
    semver: str | None = None
    semver_filter: str | None = None
    """A regular expression applied to tags before the semver range (only with `semver`)."""
    tag: str | None = None


class OCILayerSelector(FluxModel):
    """Which layer of the artifact to use, and whether to extract it or copy it as-is."""

    media_type: str | None = None
    operation: Literal["extract", "copy"] | None = None


class OIDCIdentityMatch(FluxModel):
    """Regular expressions the keyless signature's OIDC issuer and subject must match."""

    issuer: str
    subject: str


class OCIRepositoryVerification(FluxModel):
    """Signature verification of an OCI artifact (cosign or notation)."""

    provider: Literal["cosign", "notation"] = "cosign"
    secret_ref: LocalObjectReference | None = None
    match_oidc_identity: list[OIDCIdentityMatch] | None = Field(default=None, alias="matchOIDCIdentity")
    trusted_root_secret_ref: LocalObjectReference | None = None


class OCIRepositorySpec(FluxModel):
    url: str = Field(pattern=r"^oci://.*$")
    ref: OCIRepositoryRef | None = None
    layer_selector: OCILayerSelector | None = None
    provider: Literal["generic", "aws", "azure", "gcp"] = "generic"
    secret_ref: LocalObjectReference | None = None
    """A `kubernetes.io/dockerconfigjson` Secret with registry credentials."""
    verify: OCIRepositoryVerification | None = None
    service_account_name: str | None = None
    cert_secret_ref: LocalObjectReference | None = None
    proxy_secret_ref: LocalObjectReference | None = None
    interval: Duration
    timeout: Timeout = "60s"
    ignore: str | None = None
    insecure: bool | None = None
    """Allow plain HTTP to the registry."""
    suspend: bool | None = None


class OCIRepositoryStatus(FluxStatus):
    url: str | None = None
    artifact: Artifact | None = None
    observed_ignore: str | None = None
    observed_layer_selector: OCILayerSelector | None = None


class OCIRepository(FluxObject):
    """An OCI artifact pulled periodically into an artifact."""

    GROUP: ClassVar[str] = SOURCE_GROUP
    VERSION: ClassVar[str] = SOURCE_VERSION
    KIND: ClassVar[str] = "OCIRepository"
    PLURAL: ClassVar[str] = "ocirepositories"
    SINGULAR: ClassVar[str] = "ocirepository"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ocirepo",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_SOURCES
    CRD_ANNOTATIONS: ClassVar[dict[str, str]] = SUBSTITUTE_DISABLED
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("URL", ".spec.url"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    )

    spec: OCIRepositorySpec
    status: OCIRepositoryStatus = Field(
        default_factory=OCIRepositoryStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
