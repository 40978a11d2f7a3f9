"""What a build needs from a Kustomization's spec, free of any cluster or bus access."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.fluxbuild.errors import FluxBuildError

WITH_VARIABLES = "WithVariables"
ALWAYS = "Always"


@dataclass(frozen=True)
class BuildSpec:
    """The spec fields of a Flux ``Kustomization`` that change what is rendered.

    Build one with :meth:`from_spec` from the Kustomization's ``spec`` (camelCase, as in the
    cluster); it refuses fields Sluice does not support yet, naming them.
    """

    path: str = ""
    target_namespace: str | None = None
    name_prefix: str | None = None
    name_suffix: str | None = None
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    images: tuple[Mapping[str, Any], ...] = ()
    patches: tuple[Mapping[str, Any], ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    build_metadata: tuple[str, ...] = ()
    post_build: bool = False
    """Whether ``spec.postBuild`` is set (substitution runs only then, as in Flux)."""
    substitute: Mapping[str, str] = field(default_factory=dict)
    """``spec.postBuild.substitute``: inline variables, which win over ``substituteFrom``."""
    substitute_strategy: str = WITH_VARIABLES
    strict: bool = True
    """Flux's ``StrictPostBuildSubstitutions`` gate (on by default since kustomize-controller 1.9)."""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, strict: bool = True) -> BuildSpec:
        """Read a Kustomization ``spec`` (camelCase keys); unsupported fields raise :class:`FluxBuildError`."""
        check_supported(spec)
        common = spec.get("commonMetadata") or {}
        post = spec.get("postBuild")
        return cls(
            path=str(spec.get("path") or ""),
            target_namespace=spec.get("targetNamespace") or None,
            name_prefix=spec.get("namePrefix") or None,
            name_suffix=spec.get("nameSuffix") or None,
            common_labels=dict(common.get("labels") or {}),
            common_annotations=dict(common.get("annotations") or {}),
            images=tuple(dict(i) for i in spec.get("images") or ()),
            patches=tuple(dict(p) for p in spec.get("patches") or ()),
            components=tuple(str(c) for c in spec.get("components") or ()),
            ignore_missing_components=bool(spec.get("ignoreMissingComponents")),
            build_metadata=tuple(str(b) for b in spec.get("buildMetadata") or ()),
            post_build=post is not None,
            substitute=dict((post or {}).get("substitute") or {}),
            substitute_strategy=str((post or {}).get("substituteStrategy") or WITH_VARIABLES),
            strict=strict,
        )


# spec fields whose absence of support must fail the build (never silently ignored)
UNSUPPORTED_FIELDS: dict[str, str] = {
    "decryption": "SOPS decryption is not supported yet",
    "kubeConfig": "applying to a remote cluster (kubeConfig) is not supported yet",
}


def check_supported(spec: Mapping[str, Any]) -> None:
    """Fail, naming the field, when ``spec`` uses a Flux feature the build cannot honour."""
    for name, why in UNSUPPORTED_FIELDS.items():
        if spec.get(name):
            raise FluxBuildError(f"spec.{name}: {why}")
    post = spec.get("postBuild") or {}
    strategy = post.get("substituteStrategy")
    if strategy not in (None, WITH_VARIABLES, ALWAYS):
        raise FluxBuildError(
            f"spec.postBuild.substituteStrategy: {strategy!r} is not one of {WITH_VARIABLES}, {ALWAYS}"
        )


def merge_variables(
    sources: Iterable[Mapping[str, str]], inline: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Flux's variable precedence: ``substituteFrom`` in order (later wins), then inline ``substitute``.

    Newlines are removed from every value, as kustomize-controller does.
    """
    merged: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            merged[key] = value.replace("\n", "")
    for key, value in (inline or {}).items():
        merged[key] = str(value).replace("\n", "")
    return merged
