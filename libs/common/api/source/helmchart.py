"""HelmChart (`source.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_SOURCES,
    READY_COLUMN,
    STATUS_COLUMN,
    AccessFrom,
    Artifact,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    PrinterColumn,
    column,
)
from libs.common.api.source.gitrepository import SOURCE_GROUP, SOURCE_VERSION
from libs.common.api.source.ocirepository import OCIRepositoryVerification


class LocalHelmChartSourceReference(FluxModel):
    """The source of the chart, in the HelmChart's namespace."""

    api_version: str | None = None
    kind: Literal["HelmRepository", "GitRepository", "Bucket"]
    name: str


class HelmChartSpec(FluxModel):
    chart: str
    """Chart name (HelmRepository) or path inside the Git/Bucket artifact."""
    version: str = "*"
    """Semver range; only used with HelmRepository sources."""
    source_ref: LocalHelmChartSourceReference
    interval: Duration
    reconcile_strategy: Literal["ChartVersion", "Revision"] = "ChartVersion"
    """`Revision` makes a new artifact on every source revision (Git/Bucket)."""
    values_files: list[str] | None = None
    values_file: str | None = None
    """Deprecated: merged before `valuesFiles`."""
    ignore_missing_values_files: bool | None = None
    suspend: bool | None = None
    access_from: AccessFrom | None = None
    verify: OCIRepositoryVerification | None = None
    """Signature verification; OCI charts only."""


class HelmChartStatus(FluxStatus):
    observed_source_artifact_revision: str | None = None
    observed_chart_name: str | None = None
    observed_values_files: list[str] | None = None
    url: str | None = None
    artifact: Artifact | None = None


class HelmChart(FluxObject):
    """A packaged Helm chart built from a HelmRepository, GitRepository or Bucket."""

    GROUP: ClassVar[str] = SOURCE_GROUP
    VERSION: ClassVar[str] = SOURCE_VERSION
    KIND: ClassVar[str] = "HelmChart"
    PLURAL: ClassVar[str] = "helmcharts"
    SINGULAR: ClassVar[str] = "helmchart"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("hc",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_SOURCES
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Chart", ".spec.chart"),
        column("Version", ".spec.version"),
        column("Source Kind", ".spec.sourceRef.kind"),
        column("Source Name", ".spec.sourceRef.name"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    )

    spec: HelmChartSpec
    status: HelmChartStatus = Field(
        default_factory=HelmChartStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
