"""Kustomize-related types shared by Kustomization and HelmRelease (fluxcd/pkg `apis/kustomize`)."""

from __future__ import annotations

from libs.common.api.meta import FluxModel


class Selector(FluxModel):
    """Selects Kubernetes objects by group/version/kind, name, namespace and selectors."""

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    annotation_selector: str | None = None
    label_selector: str | None = None


class Patch(FluxModel):
    """An inline strategic-merge or JSON6902 patch and the objects it targets."""

    patch: str
    target: Selector | None = None


class Image(FluxModel):
    """A kustomize images-transformer entry."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None


class CustomHealthCheck(FluxModel):
    """CEL expressions that decide the health of objects of one API group (and kind)."""

    api_version: str
    kind: str | None = None
    current: str | None = None
    in_progress: str | None = None
    failed: str | None = None


class IgnoreRule(FluxModel):
    """JSON Pointer paths to ignore in drift detection, for the selected objects."""

    paths: list[str]
    target: Selector | None = None


class CommonMetadata(FluxModel):
    """Labels and annotations set on every applied object."""

    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None


__all__ = ["CommonMetadata", "CustomHealthCheck", "IgnoreRule", "Image", "Patch", "Selector"]
