"""Kustomization (`kustomize.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.duration import parse_duration
from libs.common.api.kustomize.types import CommonMetadata, CustomHealthCheck, IgnoreRule, Image, Patch
from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_APPLIERS,
    READY_COLUMN,
    STATUS_COLUMN,
    DependencyReference,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    Int64,
    KubeConfigReference,
    LocalObjectReference,
    NamespacedObjectKindReference,
    PrinterColumn,
    ResourceInventory,
    Time,
)

KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"


class CrossNamespaceSourceReference(FluxModel):
    """The source providing the manifests; namespace defaults to the Kustomization's."""

    api_version: str | None = None
    kind: Literal["OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"]
    name: str
    namespace: str | None = None


class Decryption(FluxModel):
    """SOPS decryption of Secrets before applying."""

    provider: Literal["sops"]
    secret_ref: LocalObjectReference | None = None
    service_account_name: str | None = None


class SubstituteReference(FluxModel):
    """A ConfigMap or Secret whose data are variables for post-build substitution."""

    kind: Literal["Secret", "ConfigMap"]
    name: str = Field(min_length=1, max_length=253)
    optional: bool = False


class PostBuild(FluxModel):
    """Variable substitution (`${var}`) applied to the built manifests."""

    substitute: dict[str, str] | None = None
    substitute_from: list[SubstituteReference] | None = None
    substitute_strategy: Literal["WithVariables", "Always"] | None = None


class KustomizationSpec(FluxModel):
    common_metadata: CommonMetadata | None = None
    depends_on: list[DependencyReference] | None = None
    decryption: Decryption | None = None
    interval: Duration
    retry_interval: Duration | None = None
    """Retry period after a failure; defaults to `interval`."""
    kube_config: KubeConfigReference | None = None
    path: str | None = None
    """Directory in the artifact holding the manifests; defaults to its root."""
    name_prefix: str | None = Field(default=None, max_length=200)
    name_suffix: str | None = Field(default=None, max_length=200)
    patches: list[Patch] | None = None
    images: list[Image] | None = None
    post_build: PostBuild | None = None
    prune: bool
    """Garbage-collect objects that left the source (required, as in Flux)."""
    deletion_policy: Literal["MirrorPrune", "Delete", "WaitForTermination", "Orphan"] | None = None
    health_checks: list[NamespacedObjectKindReference] | None = None
    health_check_exprs: list[CustomHealthCheck] | None = None
    service_account_name: str | None = None
    source_ref: CrossNamespaceSourceReference
    suspend: bool | None = None
    target_namespace: str | None = Field(default=None, min_length=1, max_length=63)
    timeout: Duration | None = None
    """Timeout for build, apply and health checks; defaults to `interval`."""
    force: bool = False
    wait: bool | None = None
    """Health-check every applied object (`healthChecks` is then ignored)."""
    components: list[str] | None = None
    ignore_missing_components: bool | None = None
    build_metadata: list[Literal["originAnnotations", "transformerAnnotations"]] | None = None
    ignore: list[IgnoreRule] | None = None
    """Drift-detection ignore rules."""

    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    def timeout_seconds(self) -> float:
        """`timeout`, or `interval` when unset."""
        return parse_duration(self.timeout or self.interval)

    def retry_interval_seconds(self) -> float:
        """`retryInterval`, or `interval` when unset."""
        return parse_duration(self.retry_interval or self.interval)


class HistorySnapshot(FluxModel):
    """One entry of `status.history`: a distinct build (digest) and how its reconciliations went."""

    digest: str
    first_reconciled: Time
    last_reconciled: Time
    last_reconciled_duration: str
    last_reconciled_status: str
    total_reconciliations: Int64
    metadata: dict[str, str] | None = None


class KustomizationStatus(FluxStatus):
    last_applied_revision: str | None = None
    last_applied_origin_revision: str | None = None
    last_attempted_revision: str | None = None
    inventory: ResourceInventory | None = None
    history: list[HistorySnapshot] | None = None


class Kustomization(FluxObject):
    """Builds a path of a source with kustomize and applies it to the cluster."""

    GROUP: ClassVar[str] = KUSTOMIZE_GROUP
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Kustomization"
    PLURAL: ClassVar[str] = "kustomizations"
    SINGULAR: ClassVar[str] = "kustomization"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ks",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_APPLIERS
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (AGE_COLUMN, READY_COLUMN, STATUS_COLUMN)

    spec: KustomizationSpec
    status: KustomizationStatus = Field(
        default_factory=KustomizationStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
