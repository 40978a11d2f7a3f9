"""HelmRelease (`helm.toolkit.fluxcd.io/v2`)."""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

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
    JSONObject,
    KubeConfigReference,
    LocalObjectReference,
    PrinterColumn,
    ResourceInventory,
    Time,
    cel_rules,
    rule_error,
)
from libs.common.api.source.ocirepository import OIDCIdentityMatch

HELM_GROUP = "helm.toolkit.fluxcd.io"

Strategy = Literal["RemediateOnFailure", "RetryOnFailure"]
CRDsPolicy = Literal["Skip", "Create", "CreateReplace"]


class CrossNamespaceObjectReference(FluxModel):
    """The source of a `chart` template: a HelmRepository, GitRepository or Bucket."""

    api_version: str | None = None
    kind: Literal["HelmRepository", "GitRepository", "Bucket"]
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, min_length=1, max_length=63)


class CrossNamespaceSourceReference(FluxModel):
    """A ready-made chart source for `chartRef`."""

    api_version: str | None = None
    kind: Literal["OCIRepository", "HelmChart", "ExternalArtifact"]
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, min_length=1, max_length=63)


class HelmChartTemplateVerification(FluxModel):
    provider: Literal["cosign", "notation"] = "cosign"
    secret_ref: LocalObjectReference | None = None
    match_oidc_identity: list[OIDCIdentityMatch] | None = Field(default=None, alias="matchOIDCIdentity")


class HelmChartTemplateSpec(FluxModel):
    """Spec of the HelmChart the controller generates for this release."""

    chart: str = Field(min_length=1, max_length=2048)
    version: str = "*"
    source_ref: CrossNamespaceObjectReference
    interval: Duration | None = None
    """Chart check period; defaults to the HelmRelease's interval."""
    reconcile_strategy: Literal["ChartVersion", "Revision"] = "ChartVersion"
    values_files: list[str] | None = None
    ignore_missing_values_files: bool | None = None
    verify: HelmChartTemplateVerification | None = None


class HelmChartTemplateObjectMeta(FluxModel):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class HelmChartTemplate(FluxModel):
    """Template for the HelmChart generated from a HelmRepository, GitRepository or Bucket."""

    metadata: HelmChartTemplateObjectMeta | None = None
    spec: HelmChartTemplateSpec


class DriftDetection(FluxModel):
    """Detection (and correction) of cluster drift from the stored release manifest."""

    mode: Literal["enabled", "warn", "disabled"] | None = None
    ignore: list[IgnoreRule] | None = None


class InstallRemediation(FluxModel):
    retries: int | None = None
    """Number of retries after a failed install; negative = unlimited."""
    ignore_test_failures: bool | None = None
    remediate_last_failure: bool | None = None


class UpgradeRemediation(FluxModel):
    retries: int | None = None
    """Number of retries after a failed upgrade; negative = unlimited."""
    ignore_test_failures: bool | None = None
    remediate_last_failure: bool | None = None
    strategy: Literal["rollback", "uninstall"] | None = None


class ActionStrategy(FluxModel):
    """What to do after a failed install/upgrade: remediate, or retry after `retryInterval`."""

    name: Strategy
    retry_interval: Duration | None = None


class Install(FluxModel):
    timeout: Duration | None = None
    remediation: InstallRemediation | None = None
    strategy: ActionStrategy | None = None
    disable_wait: bool | None = None
    disable_wait_for_jobs: bool | None = None
    disable_hooks: bool | None = None
    disable_open_api_validation: bool | None = Field(default=None, alias="disableOpenAPIValidation")
    disable_schema_validation: bool | None = None
    disable_take_ownership: bool | None = None
    replace: bool | None = None
    skip_crds: bool | None = Field(default=None, alias="skipCRDs")
    """Deprecated: use `crds: Skip`."""
    crds: CRDsPolicy | None = None
    create_namespace: bool | None = None
    server_side_apply: bool | None = None


class Upgrade(FluxModel):
    timeout: Duration | None = None
    remediation: UpgradeRemediation | None = None
    strategy: ActionStrategy | None = None
    disable_wait: bool | None = None
    disable_wait_for_jobs: bool | None = None
    disable_hooks: bool | None = None
    disable_open_api_validation: bool | None = Field(default=None, alias="disableOpenAPIValidation")
    disable_schema_validation: bool | None = None
    disable_take_ownership: bool | None = None
    force: bool | None = None
    preserve_values: bool | None = None
    cleanup_on_fail: bool | None = None
    crds: CRDsPolicy | None = None
    server_side_apply: Literal["enabled", "disabled", "auto"] | None = None
    chart_name_change_strategy: Literal["Reinstall", "InPlaceUpdate"] | None = None


class Filter(FluxModel):
    """Selects (or with `exclude`, skips) a Helm test by name."""

    name: str = Field(min_length=1, max_length=253)
    exclude: bool | None = None


class Test(FluxModel):
    enable: bool | None = None
    timeout: Duration | None = None
    ignore_failures: bool | None = None
    filters: list[Filter] | None = None


class Rollback(FluxModel):
    timeout: Duration | None = None
    disable_wait: bool | None = None
    disable_wait_for_jobs: bool | None = None
    disable_hooks: bool | None = None
    recreate: bool | None = None
    force: bool | None = None
    cleanup_on_fail: bool | None = None
    server_side_apply: Literal["enabled", "disabled", "auto"] | None = None


class Uninstall(FluxModel):
    timeout: Duration | None = None
    disable_hooks: bool | None = None
    keep_history: bool | None = None
    disable_wait: bool | None = None
    deletion_propagation: Literal["background", "foreground", "orphan"] = "background"


class ValuesReference(FluxModel):
    """Values taken from a key of a ConfigMap or Secret, optionally placed at `targetPath`."""

    kind: Literal["Secret", "ConfigMap"]
    name: str = Field(min_length=1, max_length=253)
    values_key: str | None = Field(default=None, max_length=253, pattern=r"^[\-._a-zA-Z0-9]+$")
    target_path: str | None = Field(
        default=None, max_length=250, pattern=r"^([a-zA-Z0-9_\-.\\\/]|\[[0-9]{1,5}\])+$"
    )
    optional: bool | None = None
    literal: bool | None = None
    """Set `targetPath` like `--set-literal` instead of `--set`."""


class Kustomize(FluxModel):
    patches: list[Patch] | None = None
    images: list[Image] | None = None


class PostRenderer(FluxModel):
    """A post-render step applied to the rendered chart manifests."""

    kustomize: Kustomize | None = None


class WaitStrategy(FluxModel):
    name: Literal["poller", "legacy"]


class HelmReleaseSpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))",
                "either chart or chartRef must be set",
            )
        )
    )

    chart: HelmChartTemplate | None = None
    chart_ref: CrossNamespaceSourceReference | None = None
    interval: Duration
    kube_config: KubeConfigReference | None = None
    suspend: bool | None = None
    release_name: str | None = Field(default=None, min_length=1, max_length=53)
    target_namespace: str | None = Field(default=None, min_length=1, max_length=63)
    storage_namespace: str | None = Field(default=None, min_length=1, max_length=63)
    depends_on: list[DependencyReference] | None = None
    timeout: Duration = "5m0s"
    """Timeout of each Helm action (install, upgrade, test, rollback, uninstall)."""
    max_history: int = 5
    """Release revisions kept by Helm; 0 = unlimited."""
    service_account_name: str | None = Field(default=None, min_length=1, max_length=253)
    persistent_client: bool | None = None
    drift_detection: DriftDetection | None = None
    install: Install | None = None
    upgrade: Upgrade | None = None
    test: Test | None = None
    rollback: Rollback | None = None
    uninstall: Uninstall | None = None
    values_from: list[ValuesReference] | None = None
    values: JSONObject | None = None
    post_renderers: list[PostRenderer] | None = None
    post_render_strategy: Literal["nohooks", "combined", "separate"] | None = None
    common_metadata: CommonMetadata | None = None
    wait_strategy: WaitStrategy | None = None
    health_check_exprs: list[CustomHealthCheck] | None = None

    @model_validator(mode="after")
    def _chart_or_chart_ref(self) -> Self:
        if (self.chart is None) == (self.chart_ref is None):
            raise rule_error("chart", "either chart or chartRef must be set")
        return self

    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class TestHookStatus(FluxModel):
    last_started: Time | None = None
    last_completed: Time | None = None
    phase: str | None = None


class Snapshot(FluxModel):
    """A Helm release revision as the controller observed it."""

    api_version: str | None = None
    digest: str
    name: str
    namespace: str
    version: int
    status: str
    chart_name: str
    chart_version: str
    app_version: str | None = None
    config_digest: str
    first_deployed: Time
    last_deployed: Time
    deleted: Time | None = None
    test_hooks: dict[str, TestHookStatus] | None = None
    oci_digest: str | None = None


class HelmReleaseStatus(FluxStatus):
    last_handled_force_at: str | None = None
    last_handled_reset_at: str | None = None
    observed_post_renderers_digest: str | None = None
    observed_common_metadata_digest: str | None = None
    last_attempted_generation: Int64 | None = None
    helm_chart: str | None = None
    """`<namespace>/<name>` of the generated HelmChart."""
    storage_namespace: str | None = None
    history: list[Snapshot] | None = None
    last_attempted_release_action: Literal["install", "upgrade"] | None = None
    last_attempted_release_action_duration: str | None = None
    failures: Int64 | None = None
    install_failures: Int64 | None = None
    upgrade_failures: Int64 | None = None
    last_attempted_revision: str | None = None
    last_attempted_revision_digest: str | None = None
    last_attempted_values_checksum: str | None = None
    """Deprecated in favour of `lastAttemptedConfigDigest`."""
    last_release_revision: int | None = None
    """Deprecated in favour of `history`."""
    last_attempted_config_digest: str | None = None
    inventory: ResourceInventory | None = None


class HelmRelease(FluxObject):
    """A Helm release installed, upgraded, tested and remediated from a chart source."""

    GROUP: ClassVar[str] = HELM_GROUP
    VERSION: ClassVar[str] = "v2"
    KIND: ClassVar[str] = "HelmRelease"
    PLURAL: ClassVar[str] = "helmreleases"
    SINGULAR: ClassVar[str] = "helmrelease"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("hr",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_APPLIERS
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (AGE_COLUMN, READY_COLUMN, STATUS_COLUMN)

    spec: HelmReleaseSpec
    status: HelmReleaseStatus = Field(
        default_factory=HelmReleaseStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )

    def release_name(self) -> str:
        """`spec.releaseName`, or `[<targetNamespace>-]<name>` shortened as Helm requires."""
        if self.spec.release_name:
            return self.spec.release_name
        name = self.name
        if self.spec.target_namespace:
            name = f"{self.spec.target_namespace}-{name}"
        if len(name) > 53:
            digest = hashlib.sha256(name.encode()).hexdigest()
            name = f"{name[:40]}-{digest[:12]}"
        return name

    def storage_namespace(self) -> str:
        return self.spec.storage_namespace or self.namespace
