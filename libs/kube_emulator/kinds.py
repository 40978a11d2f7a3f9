"""The table of resource types the emulator serves: built-in kinds as data, custom resources from CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    """One served resource (group + plural), possibly under several versions sharing one storage."""

    group: str
    versions: list[str]
    resource: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    has_status: bool = False
    scale: JSON | None = None  # {specReplicasPath, statusReplicasPath, labelSelectorPath}
    singular: str = ""
    crd_name: str | None = None
    schemas: dict[str, JSON] = field(default_factory=dict)
    printer_columns: dict[str, list[JSON]] = field(default_factory=dict)
    storage_version: str = ""
    list_kind_name: str = ""
    review: bool = False  # create-only, answered and never stored (access/token reviews)

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if not self.storage_version:
            self.storage_version = self.versions[0]

    @property
    def verbs(self) -> list[str]:
        return ["create"] if self.review else list(VERBS)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.resource)

    @property
    def list_kind(self) -> str:
        return self.list_kind_name or self.kind + "List"

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v


# (group, versions, resource, kind, namespaced, shortNames, categories, has status subresource)
_BUILTINS: list[tuple[str, list[str], str, str, bool, list[str], list[str], bool]] = [
    ("", ["v1"], "namespaces", "Namespace", False, ["ns"], [], True),
    ("", ["v1"], "configmaps", "ConfigMap", True, ["cm"], [], False),
    ("", ["v1"], "secrets", "Secret", True, [], [], False),
    ("", ["v1"], "services", "Service", True, ["svc"], ["all"], True),
    ("", ["v1"], "serviceaccounts", "ServiceAccount", True, ["sa"], [], False),
    ("", ["v1"], "pods", "Pod", True, ["po"], ["all"], True),
    ("", ["v1"], "events", "Event", True, ["ev"], [], False),
    ("", ["v1"], "endpoints", "Endpoints", True, ["ep"], [], False),
    ("", ["v1"], "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], [], True),
    ("", ["v1"], "persistentvolumes", "PersistentVolume", False, ["pv"], [], True),
    ("", ["v1"], "limitranges", "LimitRange", True, ["limits"], [], False),
    ("", ["v1"], "resourcequotas", "ResourceQuota", True, ["quota"], [], True),
    ("", ["v1"], "replicationcontrollers", "ReplicationController", True, ["rc"], ["all"], True),
    ("", ["v1"], "nodes", "Node", False, ["no"], [], True),
    ("apps", ["v1"], "deployments", "Deployment", True, ["deploy"], ["all"], True),
    ("apps", ["v1"], "statefulsets", "StatefulSet", True, ["sts"], ["all"], True),
    ("apps", ["v1"], "daemonsets", "DaemonSet", True, ["ds"], ["all"], True),
    ("apps", ["v1"], "replicasets", "ReplicaSet", True, ["rs"], ["all"], True),
    ("apps", ["v1"], "controllerrevisions", "ControllerRevision", True, [], [], False),
    ("batch", ["v1"], "jobs", "Job", True, [], ["all"], True),
    ("batch", ["v1"], "cronjobs", "CronJob", True, ["cj"], ["all"], True),
    ("networking.k8s.io", ["v1"], "ingresses", "Ingress", True, ["ing"], [], True),
    ("networking.k8s.io", ["v1"], "ingressclasses", "IngressClass", False, [], [], False),
    ("networking.k8s.io", ["v1"], "networkpolicies", "NetworkPolicy", True, ["netpol"], [], False),
    ("rbac.authorization.k8s.io", ["v1"], "roles", "Role", True, [], [], False),
    ("rbac.authorization.k8s.io", ["v1"], "clusterroles", "ClusterRole", False, [], [], False),
    ("rbac.authorization.k8s.io", ["v1"], "rolebindings", "RoleBinding", True, [], [], False),
    ("rbac.authorization.k8s.io", ["v1"], "clusterrolebindings", "ClusterRoleBinding", False, [], [], False),
    (
        "apiextensions.k8s.io",
        ["v1"],
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ["crd", "crds"],
        ["api-extensions"],
        True,
    ),
    ("events.k8s.io", ["v1"], "events", "Event", True, ["ev"], [], False),
    ("coordination.k8s.io", ["v1"], "leases", "Lease", True, [], [], False),
    ("storage.k8s.io", ["v1"], "storageclasses", "StorageClass", False, ["sc"], [], False),
    (
        "autoscaling",
        ["v2"],
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ["hpa"],
        ["all"],
        True,
    ),
    ("policy", ["v1"], "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], [], True),
    ("scheduling.k8s.io", ["v1"], "priorityclasses", "PriorityClass", False, ["pc"], [], False),
    (
        "admissionregistration.k8s.io",
        ["v1"],
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        [],
        ["api-extensions"],
        False,
    ),
    (
        "admissionregistration.k8s.io",
        ["v1"],
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        [],
        ["api-extensions"],
        False,
    ),
    ("apiregistration.k8s.io", ["v1"], "apiservices", "APIService", False, [], ["api-extensions"], True),
    ("discovery.k8s.io", ["v1"], "endpointslices", "EndpointSlice", True, [], [], False),
]


# Review kinds: no RBAC or authentication is enforced, so every review says yes.
_REVIEWS: list[tuple[str, str, str, bool]] = [
    ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
    ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
    ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
    ("authentication.k8s.io", "tokenreviews", "TokenReview", False),
    ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
]

_SCALABLE = {
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("", "replicationcontrollers"),
}
BUILTIN_SCALE: JSON = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}


def builtin_types() -> list[ResourceType]:
    reviews = [
        ResourceType(group=g, versions=["v1"], resource=r, kind=k, namespaced=ns, review=True)
        for g, r, k, ns in _REVIEWS
    ]
    return reviews + [
        ResourceType(
            group=g,
            versions=list(vs),
            resource=r,
            kind=k,
            namespaced=ns,
            short_names=list(sn),
            categories=list(cat),
            has_status=st,
            scale=dict(BUILTIN_SCALE) if (g, r) in _SCALABLE else None,
        )
        for g, vs, r, k, ns, sn, cat, st in _BUILTINS
    ]


def crd_resource_type(crd: JSON) -> ResourceType:
    """Build the served type of a CustomResourceDefinition (apiextensions.k8s.io/v1)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), None)
    served_names = [v["name"] for v in versions]
    if storage is None or storage not in served_names:
        storage = served_names[0] if served_names else "v1"
    schemas: dict[str, JSON] = {}
    columns: dict[str, list[JSON]] = {}
    has_status = False
    scale: JSON | None = None
    for v in versions:
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is not None:
            schemas[v["name"]] = schema
        columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
        subresources = v.get("subresources") or {}
        if "status" in subresources:
            has_status = True
        if isinstance(subresources.get("scale"), dict):
            scale = dict(subresources["scale"])
    return ResourceType(
        group=spec.get("group", ""),
        versions=served_names or [storage],
        resource=names.get("plural", ""),
        kind=names.get("kind", ""),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        has_status=has_status,
        scale=scale,
        singular=names.get("singular") or names.get("kind", "").lower(),
        crd_name=(crd.get("metadata") or {}).get("name"),
        schemas=schemas,
        printer_columns=columns,
        storage_version=storage,
        list_kind_name=names.get("listKind") or "",
    )
