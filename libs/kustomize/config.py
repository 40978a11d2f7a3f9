"""Transformer configuration: which fields each built-in transformer touches.

The defaults mirror kustomize's ``api/konfig/builtinpluginconsts``; a kustomization extends
them with ``configurations:`` files and ``crds:`` OpenAPI documents.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from libs.kustomize.errors import KustomizeError
from libs.kustomize.resource import Gvk
from libs.kustomize.yamlio import YAMLInputError, load_all

# ------------------------------------------------------------------------------------------------
# Field specs
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str, ...]:
    """kustomize's PathSplitter: split on ``/`` except where escaped as ``\\/``."""
    raw = path.split("/")
    parts = [raw[0]]
    for piece in raw[1:]:
        if parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1] + "/" + piece
        else:
            parts.append(piece)
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    gvk: Gvk
    path: str
    create: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return split_path(self.path)

    def matches(self, obj: dict[str, Any]) -> bool:
        return Gvk.of(obj).is_selected(self.gvk)


Setter = Callable[[dict[str, Any], str], None]


def apply_fieldspec(obj: dict[str, Any], spec: FieldSpec, setter: Setter, create_map: bool) -> None:
    """Call ``setter(container, key)`` for every field ``spec.path`` designates in ``obj``.

    Sequences met on the way are traversed element by element without consuming a path part
    (a ``[]`` suffix on a part says the same thing explicitly). With ``spec.create`` missing
    fields are created: intermediate ones as mappings, the last one as a mapping when
    ``create_map`` (labels, annotations) and otherwise left for the setter to fill.
    """
    if not spec.matches(obj):
        return
    _walk(obj, spec.parts, 0, spec.create, setter, create_map)


def _walk(node: Any, parts: tuple[str, ...], i: int, create: bool, setter: Setter, create_map: bool) -> None:
    if isinstance(node, list):
        for element in node:
            _walk(element, parts, i, create, setter, create_map)
        return
    if not isinstance(node, dict):
        return
    part = parts[i]
    is_seq = part.endswith("[]")
    key = part[:-2] if is_seq else part
    last = i == len(parts) - 1
    if node.get(key) is None:
        if not create or is_seq:
            return
        if not last or create_map:
            node[key] = {}
        elif key not in node:
            node[key] = None
    if last:
        setter(node, key)
    else:
        _walk(node[key], parts, i + 1, create, setter, create_map)


Path = tuple[str | int, ...]


def collect_map_targets(obj: dict[str, Any], spec: FieldSpec) -> list[tuple[dict[str, Any], Path]]:
    """The maps ``spec.path`` designates in ``obj`` (created when ``spec.create``), with their paths.

    Used by the label and annotation transformers, which set entries inside those maps.
    """
    found: list[tuple[dict[str, Any], Path]] = []
    if spec.matches(obj):
        _collect(obj, spec.parts, 0, spec.create, (), found)
    return found


def _collect(
    node: Any,
    parts: tuple[str, ...],
    i: int,
    create: bool,
    path: Path,
    found: list[tuple[dict[str, Any], Path]],
) -> None:
    if isinstance(node, list):
        for index, element in enumerate(node):
            _collect(element, parts, i, create, (*path, index), found)
        return
    if not isinstance(node, dict):
        return
    part = parts[i]
    is_seq = part.endswith("[]")
    key = part[:-2] if is_seq else part
    if node.get(key) is None:
        if not create or is_seq:
            return
        node[key] = {}
    value = node[key]
    if i == len(parts) - 1:
        if isinstance(value, dict):
            found.append((value, (*path, key)))
        else:
            raise KustomizeError(f"expected a map at field {'/'.join(parts)} to set labels/annotations")
    else:
        _collect(value, parts, i + 1, create, (*path, key), found)


def parse_fieldspec(raw: Any, where: str) -> FieldSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
        raise KustomizeError(f"{where}: a fieldSpec needs a 'path'")
    return FieldSpec(
        Gvk(str(raw.get("group") or ""), str(raw.get("version") or ""), str(raw.get("kind") or "")),
        raw["path"],
        bool(raw.get("create", False)),
    )


def merge_specs(base: list[FieldSpec], extra: list[FieldSpec]) -> list[FieldSpec]:
    """FsSlice.MergeAll: append specs not already present (same GVK and path)."""
    result = list(base)
    seen = {(s.gvk, s.path): s for s in base}
    for spec in extra:
        existing = seen.get((spec.gvk, spec.path))
        if existing is None:
            seen[(spec.gvk, spec.path)] = spec
            result.append(spec)
        elif existing.create != spec.create:
            raise KustomizeError(
                f"conflicting fieldspecs for path {spec.path!r} ({spec.gvk}): create true and false"
            )
    return result


# ------------------------------------------------------------------------------------------------
# TransformerConfig
# ------------------------------------------------------------------------------------------------

_SPEC_LISTS = (
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "templateLabels",
    "commonAnnotations",
    "images",
    "replicas",
)


@dataclass(slots=True)
class TransformerConfig:
    specs: dict[str, list[FieldSpec]] = field(default_factory=lambda: {k: [] for k in _SPEC_LISTS})
    # target kind -> fields of other kinds holding its name
    name_reference: list[tuple[Gvk, list[FieldSpec]]] = field(default_factory=list)

    def copy(self) -> TransformerConfig:
        return TransformerConfig(
            {k: list(v) for k, v in self.specs.items()},
            [(g, list(fs)) for g, fs in self.name_reference],
        )

    def merge(self, other: TransformerConfig) -> TransformerConfig:
        result = self.copy()
        for key, specs in other.specs.items():
            result.specs[key] = merge_specs(result.specs.get(key, []), specs)
        for gvk, referrers in other.name_reference:
            result.add_name_reference(gvk, referrers)
        return result

    def add_name_reference(self, gvk: Gvk, referrers: list[FieldSpec]) -> None:
        for i, (existing, specs) in enumerate(self.name_reference):
            if existing == gvk:
                self.name_reference[i] = (existing, merge_specs(specs, referrers))
                return
        self.name_reference.append((gvk, list(referrers)))

    @classmethod
    def parse(cls, data: Any, where: str) -> TransformerConfig:
        """A ``configurations:`` file."""
        config = cls()
        if data is None:
            return config
        if not isinstance(data, dict):
            raise KustomizeError(f"{where}: transformer configuration must be a mapping")
        for key, value in data.items():
            if key in _SPEC_LISTS:
                if not isinstance(value, list):
                    raise KustomizeError(f"{where}: {key} must be a list of fieldSpecs")
                config.specs[key] = merge_specs(
                    config.specs[key], [parse_fieldspec(v, f"{where}: {key}") for v in value]
                )
            elif key == "nameReference":
                if not isinstance(value, list):
                    raise KustomizeError(f"{where}: nameReference must be a list")
                for entry in value:
                    if not isinstance(entry, dict):
                        raise KustomizeError(f"{where}: nameReference entries must be mappings")
                    gvk = Gvk(
                        str(entry.get("group") or ""),
                        str(entry.get("version") or ""),
                        str(entry.get("kind") or ""),
                    )
                    referrers = [
                        parse_fieldspec(v, f"{where}: nameReference {gvk.kind}")
                        for v in entry.get("fieldSpecs") or []
                    ]
                    config.add_name_reference(gvk, referrers)
            elif key == "varReference":
                raise KustomizeError(f"{where}: varReference is not supported (vars are not supported)")
            else:
                raise KustomizeError(f"{where}: unknown transformer configuration field {key!r}")
        return config


# ------------------------------------------------------------------------------------------------
# The defaults (api/konfig/builtinpluginconsts)
# ------------------------------------------------------------------------------------------------


def _fs(path: str, kind: str = "", group: str = "", version: str = "", create: bool = False) -> FieldSpec:
    return FieldSpec(Gvk(group, version, kind), path, create)


_POD_SPECS: tuple[tuple[str, str, str, str], ...] = (
    # (kind, group, version, path to the PodSpec)
    ("Pod", "", "v1", "spec"),
    ("PodTemplate", "", "", "template/spec"),
    ("ReplicationController", "", "", "spec/template/spec"),
    ("Deployment", "", "", "spec/template/spec"),
    ("ReplicaSet", "", "", "spec/template/spec"),
    ("DaemonSet", "", "", "spec/template/spec"),
    ("StatefulSet", "", "", "spec/template/spec"),
    ("Job", "", "", "spec/template/spec"),
    ("CronJob", "", "", "spec/jobTemplate/spec/template/spec"),
)


def _pod_refs(*suffixes: str) -> list[FieldSpec]:
    return [
        _fs(f"{prefix}/{suffix}", kind, group, version)
        for kind, group, version, prefix in _POD_SPECS
        for suffix in suffixes
    ]


def _labels(path_kinds: list[tuple[str, str, str, bool]]) -> list[FieldSpec]:
    return [_fs(path, kind, group, create=create) for path, kind, group, create in path_kinds]


_AFFINITY_SELECTORS = (
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
)

_TEMPLATE_LABELS: list[FieldSpec] = [
    _fs("spec/template/metadata/labels", "ReplicationController", version="v1", create=True),
    _fs("spec/template/metadata/labels", "Deployment", create=True),
    _fs("spec/template/metadata/labels", "ReplicaSet", create=True),
    _fs("spec/template/metadata/labels", "DaemonSet", create=True),
    _fs("spec/template/metadata/labels", "StatefulSet", "apps", create=True),
    _fs("spec/volumeClaimTemplates[]/metadata/labels", "StatefulSet", "apps", create=True),
    _fs("spec/template/metadata/labels", "Job", "batch", create=True),
    _fs("spec/jobTemplate/metadata/labels", "CronJob", "batch", create=True),
    _fs("spec/jobTemplate/spec/template/metadata/labels", "CronJob", "batch", create=True),
]

_COMMON_LABELS: list[FieldSpec] = [
    _fs("metadata/labels", create=True),
    _fs("spec/selector", "Service", version="v1", create=True),
    _fs("spec/selector", "ReplicationController", version="v1", create=True),
    _fs("spec/template/metadata/labels", "ReplicationController", version="v1", create=True),
    _fs("spec/selector/matchLabels", "Deployment", create=True),
    _fs("spec/template/metadata/labels", "Deployment", create=True),
    *[_fs(p, "Deployment", "apps") for p in _AFFINITY_SELECTORS],
    _fs("spec/selector/matchLabels", "ReplicaSet", create=True),
    _fs("spec/template/metadata/labels", "ReplicaSet", create=True),
    _fs("spec/selector/matchLabels", "DaemonSet", create=True),
    _fs("spec/template/metadata/labels", "DaemonSet", create=True),
    _fs("spec/selector/matchLabels", "StatefulSet", "apps", create=True),
    _fs("spec/template/metadata/labels", "StatefulSet", "apps", create=True),
    *[_fs(p, "StatefulSet", "apps") for p in _AFFINITY_SELECTORS],
    _fs("spec/volumeClaimTemplates[]/metadata/labels", "StatefulSet", "apps", create=True),
    _fs("spec/selector/matchLabels", "Job", "batch"),
    _fs("spec/template/metadata/labels", "Job", "batch", create=True),
    _fs("spec/jobTemplate/spec/selector/matchLabels", "CronJob", "batch"),
    _fs("spec/jobTemplate/metadata/labels", "CronJob", "batch", create=True),
    _fs("spec/jobTemplate/spec/template/metadata/labels", "CronJob", "batch", create=True),
    _fs("spec/selector/matchLabels", "PodDisruptionBudget", "policy"),
    _fs("spec/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
    _fs("spec/ingress/from/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
    _fs("spec/egress/to/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
]

_COMMON_ANNOTATIONS: list[FieldSpec] = [
    _fs("metadata/annotations", create=True),
    _fs("spec/template/metadata/annotations", "ReplicationController", version="v1", create=True),
    _fs("spec/template/metadata/annotations", "Deployment", create=True),
    _fs("spec/template/metadata/annotations", "ReplicaSet", create=True),
    _fs("spec/template/metadata/annotations", "DaemonSet", create=True),
    _fs("spec/template/metadata/annotations", "StatefulSet", "apps", create=True),
    _fs("spec/template/metadata/annotations", "Job", "batch", create=True),
    _fs("spec/jobTemplate/metadata/annotations", "CronJob", "batch", create=True),
    _fs("spec/jobTemplate/spec/template/metadata/annotations", "CronJob", "batch", create=True),
]

_NAMESPACE: list[FieldSpec] = [
    _fs("metadata/namespace", create=True),
    _fs("metadata/name", "Namespace", create=True),
    _fs("subjects", "RoleBinding"),
    _fs("subjects", "ClusterRoleBinding"),
    _fs("spec/service/namespace", "APIService", "apiregistration.k8s.io", create=True),
    _fs(
        "spec/conversion/webhook/clientConfig/service/namespace",
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
    ),
]

_IMAGES: list[FieldSpec] = [
    _fs("spec/containers[]/image"),
    _fs("spec/initContainers[]/image"),
    _fs("spec/template/spec/containers[]/image"),
    _fs("spec/template/spec/initContainers[]/image"),
]

_REPLICAS: list[FieldSpec] = [
    _fs("spec/replicas", "Deployment", create=True),
    _fs("spec/replicas", "StatefulSet", create=True),
    _fs("spec/replicas", "ReplicaSet", create=True),
    _fs("spec/replicas", "ReplicationController", create=True),
]

_SCALE_TARGETS = [_fs("spec/scaleTargetRef/name", "HorizontalPodAutoscaler")]


def _name_references() -> list[tuple[Gvk, list[FieldSpec]]]:
    config_map = [
        *_pod_refs(
            "volumes/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
            "volumes/projected/sources/configMap/name",
        ),
        _fs("rules/resourceNames", "Role"),
        _fs("rules/resourceNames", "ClusterRole"),
    ]
    secret = [
        *_pod_refs(
            "volumes/secret/secretName",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
            "volumes/projected/sources/secret/name",
            "volumes/csi/nodePublishSecretRef/name",
        ),
        _fs("spec/tls/secretName", "Ingress"),
        _fs("imagePullSecrets/name", "ServiceAccount"),
        _fs("secrets/name", "ServiceAccount"),
        _fs("rules/resourceNames", "Role"),
        _fs("rules/resourceNames", "ClusterRole"),
        _fs("spec/csi/nodePublishSecretRef/name", "PersistentVolume"),
        _fs("spec/csi/controllerPublishSecretRef/name", "PersistentVolume"),
        _fs("spec/csi/nodeStageSecretRef/name", "PersistentVolume"),
        _fs("spec/csi/controllerExpandSecretRef/name", "PersistentVolume"),
    ]
    service = [
        _fs("spec/serviceName", "StatefulSet", "apps"),
        _fs("spec/rules/http/paths/backend/serviceName", "Ingress"),
        _fs("spec/backend/serviceName", "Ingress"),
        _fs("spec/rules/http/paths/backend/service/name", "Ingress"),
        _fs("spec/defaultBackend/service/name", "Ingress"),
        _fs("spec/service/name", "APIService", "apiregistration.k8s.io"),
        _fs(
            "webhooks/clientConfig/service", "ValidatingWebhookConfiguration", "admissionregistration.k8s.io"
        ),
        _fs("webhooks/clientConfig/service", "MutatingWebhookConfiguration", "admissionregistration.k8s.io"),
        _fs(
            "spec/conversion/webhook/clientConfig/service", "CustomResourceDefinition", "apiextensions.k8s.io"
        ),
    ]
    role = [_fs("roleRef/name", "RoleBinding", "rbac.authorization.k8s.io")]
    cluster_role = [
        _fs("roleRef/name", "RoleBinding", "rbac.authorization.k8s.io"),
        _fs("roleRef/name", "ClusterRoleBinding", "rbac.authorization.k8s.io"),
    ]
    service_account = [
        _fs("subjects", "RoleBinding", "rbac.authorization.k8s.io"),
        _fs("subjects", "ClusterRoleBinding", "rbac.authorization.k8s.io"),
        *_pod_refs("serviceAccountName"),
    ]
    pvc = _pod_refs("volumes/persistentVolumeClaim/claimName")
    pv = [_fs("spec/volumeName", "PersistentVolumeClaim"), _fs("rules/resourceNames", "ClusterRole")]
    storage_class = [
        _fs("spec/storageClassName", "PersistentVolume"),
        _fs("spec/storageClassName", "PersistentVolumeClaim"),
        _fs("spec/volumeClaimTemplates/spec/storageClassName", "StatefulSet"),
    ]
    priority_class = _pod_refs("priorityClassName")
    ingress_class = [_fs("spec/ingressClassName", "Ingress")]
    return [
        (Gvk(kind="Deployment"), list(_SCALE_TARGETS)),
        (Gvk(kind="ReplicationController"), list(_SCALE_TARGETS)),
        (Gvk(kind="ReplicaSet"), list(_SCALE_TARGETS)),
        (Gvk(kind="StatefulSet"), list(_SCALE_TARGETS)),
        (Gvk(version="v1", kind="ConfigMap"), config_map),
        (Gvk(version="v1", kind="Secret"), secret),
        (Gvk(version="v1", kind="Service"), service),
        (Gvk("rbac.authorization.k8s.io", "", "Role"), role),
        (Gvk("rbac.authorization.k8s.io", "", "ClusterRole"), cluster_role),
        (Gvk(version="v1", kind="ServiceAccount"), service_account),
        (Gvk(version="v1", kind="PersistentVolumeClaim"), pvc),
        (Gvk(version="v1", kind="PersistentVolume"), pv),
        (Gvk("storage.k8s.io", "", "StorageClass"), storage_class),
        (Gvk("scheduling.k8s.io", "", "PriorityClass"), priority_class),
        (Gvk("networking.k8s.io", "", "IngressClass"), ingress_class),
    ]


@functools.cache
def _default_config() -> TransformerConfig:
    return TransformerConfig(
        {
            "namePrefix": [_fs("metadata/name")],
            "nameSuffix": [_fs("metadata/name")],
            "namespace": list(_NAMESPACE),
            "commonLabels": list(_COMMON_LABELS),
            "templateLabels": list(_TEMPLATE_LABELS),
            "commonAnnotations": list(_COMMON_ANNOTATIONS),
            "images": list(_IMAGES),
            "replicas": list(_REPLICAS),
        },
        _name_references(),
    )


def default_config() -> TransformerConfig:
    """A fresh copy of kustomize's built-in transformer configuration."""
    return _default_config().copy()


# ------------------------------------------------------------------------------------------------
# crds: OpenAPI definitions with x-kubernetes-* extensions
# ------------------------------------------------------------------------------------------------


def config_from_openapi(text: str, where: str) -> TransformerConfig:
    """kustomize's LoadConfigFromCRDs for one ``crds:`` file (JSON or YAML)."""
    try:
        if text.lstrip().startswith("{"):
            definitions = json.loads(text)
        else:
            docs = [d for d in load_all(text) if d is not None]
            definitions = docs[0] if docs else {}
    except (ValueError, YAMLInputError) as exc:
        raise KustomizeError(f"unable to parse open API definition from '{where}': {exc}") from None
    if not isinstance(definitions, dict):
        raise KustomizeError(f"unable to parse open API definition from '{where}': not a mapping")
    config = TransformerConfig()
    for type_name, api in definitions.items():
        properties = _properties(api)
        if not all(k in properties for k in ("kind", "apiVersion", "metadata")):
            continue
        kind = str(type_name).split(".")[-1]
        _load_crd(config, Gvk(kind=kind), definitions, str(type_name), [], set())
    return config


def _properties(api: Any) -> dict[str, Any]:
    if not isinstance(api, dict):
        return {}
    schema = api.get("Schema", api.get("schema"))
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _load_crd(
    config: TransformerConfig,
    gvk: Gvk,
    definitions: dict[str, Any],
    type_name: str,
    path: list[str],
    visiting: set[str],
) -> None:
    if type_name not in definitions or type_name in visiting:
        return
    visiting = visiting | {type_name}
    for prop_name, prop in _properties(definitions[type_name]).items():
        if not isinstance(prop, dict):
            continue
        here = [*path, prop_name]
        if "x-kubernetes-annotation" in prop:
            config.specs["commonAnnotations"] = merge_specs(
                config.specs["commonAnnotations"], [FieldSpec(gvk, "/".join(here))]
            )
        if "x-kubernetes-label-selector" in prop:
            config.specs["commonLabels"] = merge_specs(
                config.specs["commonLabels"], [FieldSpec(gvk, "/".join(here))]
            )
        if "x-kubernetes-identity" in prop:
            config.specs["namePrefix"] = merge_specs(
                config.specs["namePrefix"], [FieldSpec(gvk, "/".join(here))]
            )
        version = prop.get("x-kubernetes-object-ref-api-version")
        kind = prop.get("x-kubernetes-object-ref-kind")
        if isinstance(version, str) and isinstance(kind, str):
            name_key = prop.get("x-kubernetes-object-ref-name-key") or "name"
            config.add_name_reference(
                Gvk(version=version, kind=kind), [FieldSpec(gvk, "/".join([*here, str(name_key)]))]
            )
        ref = prop.get("$ref")
        if isinstance(ref, str) and ref:
            _load_crd(config, gvk, definitions, ref.removeprefix("#/definitions/"), here, visiting)
