"""Flux kustomize-controller build semantics over a directory, free of cluster and bus access.

>>> spec = BuildSpec.from_spec(kustomization["spec"])         # doctest: +SKIP
>>> rendered = render(Path("artifact"), spec, sources=[cm_data])  # doctest: +SKIP
>>> rendered.yaml, rendered.object_count                      # doctest: +SKIP

Callers read ``postBuild.substituteFrom`` ConfigMaps/Secrets themselves and pass their data as
``sources`` (see :func:`load_substitute_from` for the shapes Kubernetes returns). See
docs/kustomization-build.md.
"""

from libs.fluxbuild.build import Rendered, object_id, render, resolve_path
from libs.fluxbuild.envsubst import SubstitutionError, VariableNotSet, evaluate
from libs.fluxbuild.errors import ARTIFACT_FAILED, BUILD_FAILED, FluxBuildError
from libs.fluxbuild.generate import scan_manifests, write_kustomization
from libs.fluxbuild.spec import (
    ALWAYS,
    UNSUPPORTED_FIELDS,
    WITH_VARIABLES,
    BuildSpec,
    check_supported,
    merge_variables,
)
from libs.fluxbuild.variables import configmap_variables, secret_variables

__all__ = [
    "ALWAYS",
    "ARTIFACT_FAILED",
    "BUILD_FAILED",
    "UNSUPPORTED_FIELDS",
    "WITH_VARIABLES",
    "BuildSpec",
    "FluxBuildError",
    "Rendered",
    "SubstitutionError",
    "VariableNotSet",
    "check_supported",
    "configmap_variables",
    "evaluate",
    "merge_variables",
    "object_id",
    "render",
    "resolve_path",
    "scan_manifests",
    "secret_variables",
    "write_kustomization",
]
