"""Alert (`notification.toolkit.fluxcd.io/v1beta3`): which events go to a Provider. Has no status."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_NOTIFICATIONS,
    FluxModel,
    FluxObject,
    LocalObjectReference,
    PrinterColumn,
)
from libs.common.api.notification.provider import NOTIFICATION_GROUP

EventSourceKind = Literal[
    "Bucket",
    "GitRepository",
    "Kustomization",
    "HelmRelease",
    "HelmChart",
    "HelmRepository",
    "ImageRepository",
    "ImagePolicy",
    "ImageUpdateAutomation",
    "OCIRepository",
    "ArtifactGenerator",
    "ExternalArtifact",
]


class CrossNamespaceObjectReference(FluxModel):
    """Objects whose events match: by name (`*` = all) or, with `name: '*'`, by labels."""

    api_version: str | None = None
    kind: EventSourceKind
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, min_length=1, max_length=253)
    match_labels: dict[str, str] | None = None


class AlertSpec(FluxModel):
    provider_ref: LocalObjectReference
    event_severity: Literal["info", "error"] = "info"
    """`info` passes info and error events, `error` only errors."""
    event_sources: list[CrossNamespaceObjectReference]
    inclusion_list: list[str] | None = None
    """Regular expressions; an event's message must match one of them (when set)."""
    exclusion_list: list[str] | None = None
    """Regular expressions; an event whose message matches one is dropped."""
    event_metadata: dict[str, str] | None = None
    summary: str | None = Field(default=None, max_length=255)
    """Deprecated: becomes the metadata key `summary`."""
    suspend: bool | None = None


class Alert(FluxObject):
    """Routes events of selected objects to a Provider."""

    GROUP: ClassVar[str] = NOTIFICATION_GROUP
    VERSION: ClassVar[str] = "v1beta3"
    KIND: ClassVar[str] = "Alert"
    PLURAL: ClassVar[str] = "alerts"
    SINGULAR: ClassVar[str] = "alert"
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_NOTIFICATIONS
    STATUS_SUBRESOURCE: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (AGE_COLUMN,)

    spec: AlertSpec
