"""The objects of a build bundle: parsing, identities (Flux inventory ids), apply order, labels."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Any

import yaml

from libs.common.api import meta
from libs.common.api.inventory import InventoryId

Obj = dict[str, Any]

MANIFESTS_FILE = "manifests.yaml"
CRD_KIND = "CustomResourceDefinition"
NAMESPACE_KIND = "Namespace"
SSA_IGNORE = "ignore"
SSA_IF_NOT_PRESENT = "ifnotpresent"
SSA_MERGE = "merge"
DISABLED = "disabled"
ENABLED = "enabled"

# The order fluxcd/pkg/ssa applies kinds in (objects of other kinds come after, by kind name).
_APPLY_ORDER = (
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
_RANK = {kind: i for i, kind in enumerate(_APPLY_ORDER)}


class BundleError(ValueError):
    """The bundle is not a set of Kubernetes objects we can apply."""


@dataclass(frozen=True, order=True)
class ObjMeta:
    """An object's identity: what Flux's inventory id (`<ns>_<name>_<group>_<kind>`) encodes."""

    namespace: str
    name: str
    group: str
    kind: str

    @property
    def id(self) -> str:
        return str(InventoryId(self.namespace, self.name, self.group, self.kind))

    def display(self) -> str:
        """`Deployment/default/web`, or `Namespace/apps` for cluster-scoped objects (Flux's format)."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, id_: str) -> ObjMeta:
        """The object a Flux inventory id names; ValueError when it is not one."""
        return cls(*InventoryId.parse(id_))


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def version_of(api_version: str) -> str:
    return api_version.split("/", 1)[1] if "/" in api_version else api_version


def api_version_of(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def identity(obj: Obj) -> ObjMeta:
    md = obj.get("metadata") or {}
    return ObjMeta(md.get("namespace") or "", md.get("name") or "", group_of(obj["apiVersion"]), obj["kind"])


def sort_key(obj: Obj) -> tuple[int, str, str, str]:
    ident = identity(obj)
    return (_RANK.get(ident.kind, len(_RANK)), ident.kind, ident.namespace, ident.name)


def stage_of(obj: Obj) -> int:
    """Flux's apply stages: 0 = CRDs, Namespaces and ClusterRoles (everything else may need them),
    1 = kinds whose name ends in `Class` (StorageClass, IngressClass …), 2 = everything else."""
    kind = str(obj.get("kind") or "")
    if kind in (CRD_KIND, NAMESPACE_KIND, "ClusterRole"):
        return 0
    if kind.endswith("Class"):
        return 1
    return 2


def annotation(obj: Obj, key: str) -> str:
    """An annotation (or label, as Flux also reads labels) value, lower case, or ''."""
    md = obj.get("metadata") or {}
    value = (md.get("annotations") or {}).get(key) or (md.get("labels") or {}).get(key) or ""
    return str(value).lower()


def prune_disabled(obj: Obj) -> bool:
    return annotation(obj, meta.KUSTOMIZE_PRUNE_ANNOTATION) == DISABLED


def reconcile_disabled(obj: Obj) -> bool:
    return annotation(obj, meta.KUSTOMIZE_RECONCILE_ANNOTATION) == DISABLED


def force_enabled(obj: Obj) -> bool:
    return annotation(obj, meta.KUSTOMIZE_FORCE_ANNOTATION) == ENABLED


def ssa_policy(obj: Obj) -> str:
    return annotation(obj, meta.KUSTOMIZE_SSA_ANNOTATION)


def owned_by(obj: Obj, name: str, namespace: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(
        labels.get(meta.KUSTOMIZE_NAME_LABEL) == name
        and labels.get(meta.KUSTOMIZE_NAMESPACE_LABEL) == namespace
    )


def set_owner(
    obj: Obj,
    name: str,
    namespace: str,
    common_labels: dict[str, str] | None = None,
    common_annotations: dict[str, str] | None = None,
) -> None:
    """Add `commonMetadata` and the ownership labels `kustomize.toolkit.fluxcd.io/name|namespace`."""
    md = obj.setdefault("metadata", {})
    if common_labels:
        md["labels"] = {**(md.get("labels") or {}), **common_labels}
    if common_annotations:
        md["annotations"] = {**(md.get("annotations") or {}), **common_annotations}
    labels = dict(md.get("labels") or {})
    labels[meta.KUSTOMIZE_NAME_LABEL] = name
    labels[meta.KUSTOMIZE_NAMESPACE_LABEL] = namespace
    md["labels"] = labels


def read_bundle(data: bytes, *, max_bytes: int) -> list[Obj]:
    """The objects of a build bundle: `manifests.yaml` (multi-document YAML) inside a tar.gz."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            try:
                member = tar.getmember(MANIFESTS_FILE)
            except KeyError:
                raise BundleError(f"the build bundle has no {MANIFESTS_FILE}") from None
            if not member.isfile():
                raise BundleError(f"{MANIFESTS_FILE} in the build bundle is not a regular file")
            if member.size > max_bytes:
                raise BundleError(
                    f"{MANIFESTS_FILE} is {member.size} bytes, more than the limit of {max_bytes}"
                )
            handle = tar.extractfile(member)
            text = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"the build bundle is not a readable tar.gz: {exc}") from None
    return parse_manifests(text.decode("utf-8", errors="replace"))


def parse_manifests(text: str) -> list[Obj]:
    objects: list[Obj] = []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        # Only the problem and its position: the error's snippet could show a Secret's data.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise BundleError(f"{MANIFESTS_FILE} is not valid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError:
        raise BundleError(f"{MANIFESTS_FILE} is not valid YAML") from None
    seen: set[ObjMeta] = set()
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise BundleError(f"document {index} of {MANIFESTS_FILE} is not a Kubernetes object")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            candidates = doc["items"]
        else:
            candidates = [doc]
        for item in candidates:
            if not isinstance(item, dict):
                raise BundleError(f"document {index} of {MANIFESTS_FILE} holds an item that is not an object")
            md = item.get("metadata")
            if (
                not item.get("apiVersion")
                or not item.get("kind")
                or not isinstance(md, dict)
                or not md.get("name")
            ):
                raise BundleError(
                    f"document {index} of {MANIFESTS_FILE} lacks apiVersion, kind or metadata.name"
                )
            item.pop("status", None)
            ident = identity(item)
            if ident in seen:
                raise BundleError(f"{ident.display()} appears twice in the build")
            seen.add(ident)
            objects.append(item)
    return objects
