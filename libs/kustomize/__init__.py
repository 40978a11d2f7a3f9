"""``kustomize build`` in pure Python, with output identical to kustomize v5.

>>> result = build("overlays/prod")          # doctest: +SKIP
>>> print(result.to_yaml(), end="")          # doctest: +SKIP

See docs/kustomize.md for what is supported and the errors unsupported fields produce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from libs.kustomize.config import FieldSpec
from libs.kustomize.errors import KustomizeError
from libs.kustomize.generate import content_hash
from libs.kustomize.loader import Loader
from libs.kustomize.replacements import UntypedText, resolve_untyped
from libs.kustomize.resource import ORIGIN_ANNOTATION, TRANSFORMATIONS_ANNOTATION, Gvk, Resource
from libs.kustomize.target import KustTarget
from libs.kustomize.transform import fix_name_references, transform_map_entries
from libs.kustomize.yamlio import dump_stream

__all__ = ["BuildResult", "KustomizeError", "build"]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kustomize-(devel)"

_DEFAULT_ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_DEFAULT_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


@dataclass(slots=True)
class BuildResult:
    """The built resources in output order."""

    resources: list[dict[str, Any]]

    def to_yaml(self) -> str:
        """Exactly what ``kustomize build`` prints."""
        return dump_stream(self.resources)


def build(path: str | os.PathLike[str]) -> BuildResult:
    """Build the kustomization in directory ``path`` as ``kustomize build`` does."""
    loader = Loader.at(path)
    top = KustTarget(loader, None, [])
    build_metadata = [str(v) for v in top.list_field("buildMetadata")]
    for option in build_metadata:
        if option not in ("originAnnotations", "transformerAnnotations", "managedByLabel"):
            raise KustomizeError(f"{top.where}: unknown buildMetadata option {option!r}")
    if "originAnnotations" in build_metadata or "transformerAnnotations" in build_metadata:
        top.origin_path = ""
    top.build_metadata = build_metadata
    ra = top.accumulate()
    resources = ra.resources
    for r in resources:
        if r.needs_hash:
            suffix = content_hash(r.obj)
            r.store_previous_id()
            r.name = f"{r.name}-{suffix}"
    fix_name_references(resources, ra.config)
    resources = _sorted(resources, top)
    if "managedByLabel" in build_metadata:
        transform_map_entries(
            resources, {MANAGED_BY_LABEL: MANAGED_BY_VALUE}, [FieldSpec(Gvk(), "metadata/labels", True)]
        )
    out = []
    for r in resources:
        _finish_annotations(r, build_metadata)
        if r.has_untyped:
            resolve_untyped(r.obj)
        out.append(r.obj)
    return BuildResult(out)


def _finish_annotations(r: Resource, build_metadata: list[str]) -> None:
    meta = r.obj.get("metadata")
    if not isinstance(meta, dict):
        return
    extra: dict[str, str] = {}
    if "originAnnotations" in build_metadata and r.origin is not None:
        extra[ORIGIN_ANNOTATION] = r.origin
    if "transformerAnnotations" in build_metadata and r.transformations:
        extra[TRANSFORMATIONS_ANNOTATION] = r.transformations_text()
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        # kustomize rewrites metadata.annotations as a map of strings when it drops its own
        for key, value in annotations.items():
            if isinstance(value, UntypedText):
                annotations[key] = str(value)
            elif not isinstance(value, str) and not isinstance(value, dict | list):
                annotations[key] = _annotation_text(value)
    if extra:
        if not isinstance(annotations, dict):
            annotations = {}
            meta["annotations"] = annotations
        annotations.update(extra)
    elif isinstance(annotations, dict) and not annotations:
        # kustomize always carries internal annotations and clears the map when it empties
        del meta["annotations"]


def _annotation_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _sorted(resources: list[Resource], top: KustTarget) -> list[Resource]:
    options = top.k.get("sortOptions")
    order_first: tuple[str, ...] = _DEFAULT_ORDER_FIRST
    order_last: tuple[str, ...] = _DEFAULT_ORDER_LAST
    if options is not None:
        if not isinstance(options, dict):
            raise KustomizeError(f"{top.where}: sortOptions must be a mapping")
        order = options.get("order", "legacy")
        if order == "fifo":
            if options.get("legacySortOptions"):
                raise KustomizeError(
                    f"{top.where}: sortOptions: legacySortOptions may only be set with order: legacy"
                )
            return resources
        if order != "legacy":
            raise KustomizeError(f"{top.where}: sortOptions: order must be legacy or fifo, not {order!r}")
        legacy = options.get("legacySortOptions")
        if legacy is not None:
            if not isinstance(legacy, dict):
                raise KustomizeError(f"{top.where}: sortOptions: legacySortOptions must be a mapping")
            order_first = tuple(str(k) for k in legacy.get("orderFirst") or ())
            order_last = tuple(str(k) for k in legacy.get("orderLast") or ())
    ranks: dict[str, int] = {}
    for i, kind in enumerate(order_first):
        ranks.setdefault(kind, -len(order_first) + i)
    for i, kind in enumerate(order_last):
        ranks.setdefault(kind, 1 + i)

    def key(r: Resource) -> tuple[int, str, str, str]:
        gvk = r.gvk
        legacy_gvk = f"{gvk.group or '~G'}_{gvk.version or '~V'}_{gvk.kind or '~K'}"
        return (ranks.get(gvk.kind, 0), legacy_gvk, r.namespace or "~X", r.name or "~N")

    return sorted(resources, key=key)
