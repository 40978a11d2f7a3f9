"""What tests/deploy checks the deploy/k8s manifests with: building them, and a small checker of
the built-in kinds' required fields and cross-references (what a kube-apiserver with its admission
plugins would refuse, or what would only fail once pods start: a probe on an undeclared port, a
Secret that does not exist, a Service that selects no pod)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from libs.kustomize import build

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
NAMESPACE = "flux-system"

COMPONENTS = ("source", "build", "apply", "notify", "image-scan", "image-update")
DEFAULT_COMPONENTS = ("source", "build", "apply", "notify")
IMAGE_COMPONENTS = ("image-scan", "image-update")
OVERLAYS = ("minimal", "full", "s3")
# Every directory that is a kustomization on its own (Components build inside an overlay).
STANDALONE = (
    "",
    "namespace",
    "crds",
    "nats",
    "storage/pvc",
    "storage/s3",
    *(f"services/{c}" for c in COMPONENTS),
    *(f"overlays/{o}" for o in OVERLAYS),
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# Roles every cluster has; a binding may name them without shipping them.
BUILT_IN_CLUSTER_ROLES = ("cluster-admin", "admin", "edit", "view")

Obj = dict[str, Any]


def built(directory: str | Path) -> list[Obj]:
    """The objects `kustomize build deploy/k8s/<directory>` produces (libs/kustomize)."""
    return build(DEPLOY / directory).resources


def find(objects: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def workloads(objects: Iterable[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _key(kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
    return kind, namespace or "", name


def _index(objects: list[Obj]) -> set[tuple[str, str, str]]:
    return {_key(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}


def reference_problems(objects: list[Obj]) -> list[str]:
    """Everything in `objects` that refers to something missing or does not fit together."""
    index = _index(objects)
    problems: list[str] = []
    for obj in objects:
        problems.extend(_object_problems(obj, index, objects))
    return problems


def _object_problems(obj: Obj, index: set[tuple[str, str, str]], objects: list[Obj]) -> Iterator[str]:
    kind, md = obj["kind"], obj["metadata"]
    where = f"{kind}/{md['name']}"
    if not md.get("name"):
        yield f"{kind} without metadata.name"
    if kind in WORKLOAD_KINDS:
        yield from _workload_problems(obj, index, where)
    elif kind in ("ClusterRoleBinding", "RoleBinding"):
        yield from _binding_problems(obj, index, where)
    elif kind == "Service":
        yield from _service_problems(obj, objects, where)
    elif kind == "HorizontalPodAutoscaler":
        target = obj["spec"]["scaleTargetRef"]
        if _key(target["kind"], target["name"], md.get("namespace")) not in index:
            yield f"{where}: scales {target['kind']}/{target['name']}, which is not installed"


def _workload_problems(obj: Obj, index: set[tuple[str, str, str]], where: str) -> Iterator[str]:
    ns = obj["metadata"].get("namespace")
    selector = obj["spec"].get("selector", {}).get("matchLabels") or {}
    template_labels = obj["spec"]["template"]["metadata"].get("labels") or {}
    if not selector:
        yield f"{where}: spec.selector.matchLabels is required"
    if any(template_labels.get(k) != v for k, v in selector.items()):
        yield f"{where}: selector {selector} does not match the pod template labels {template_labels}"
    spec = pod_spec(obj)
    sa = spec.get("serviceAccountName")
    if sa and _key("ServiceAccount", sa, ns) not in index:
        yield f"{where}: serviceAccountName {sa} is not installed"
    claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        yield from _volume_problems(volume, index, ns, where)
    if not containers(obj):
        yield f"{where}: no containers"
    for container in containers(obj):
        yield from _container_problems(container, index, ns, f"{where} container {container.get('name')}")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes and mount["name"] not in claims:
                yield f"{where}: volumeMount {mount['name']} names no volume"


def _volume_problems(
    volume: Obj, index: set[tuple[str, str, str]], ns: str | None, where: str
) -> Iterator[str]:
    if "configMap" in volume and _key("ConfigMap", volume["configMap"]["name"], ns) not in index:
        yield f"{where}: volume {volume['name']} uses ConfigMap {volume['configMap']['name']}, not installed"
    if "secret" in volume and _key("Secret", volume["secret"]["secretName"], ns) not in index:
        yield f"{where}: volume {volume['name']} uses Secret {volume['secret']['secretName']}, not installed"
    claim = volume.get("persistentVolumeClaim")
    if claim and _key("PersistentVolumeClaim", claim["claimName"], ns) not in index:
        yield f"{where}: volume {volume['name']} uses PVC {claim['claimName']}, not installed"


def _container_problems(
    container: Obj, index: set[tuple[str, str, str]], ns: str | None, where: str
) -> Iterator[str]:
    if not container.get("name") or not container.get("image"):
        yield f"{where}: name and image are required"
    port_names = {p["name"] for p in container.get("ports", []) if "name" in p}
    port_numbers = {p["containerPort"] for p in container.get("ports", [])}
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if probe and "httpGet" in probe:
            port = probe["httpGet"]["port"]
            if port not in port_names and port not in port_numbers:
                yield f"{where}: {probe_name} uses port {port}, which the container does not declare"
    for source in container.get("envFrom", []):
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if ref and not ref.get("optional") and _key(kind, ref["name"], ns) not in index:
                yield f"{where}: envFrom {kind} {ref['name']} is not installed"
    for env in container.get("env", []):
        value_from = env.get("valueFrom") or {}
        for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = value_from.get(field)
            if ref and not ref.get("optional") and _key(kind, ref["name"], ns) not in index:
                yield f"{where}: env {env['name']} reads {kind} {ref['name']}, not installed"


def _binding_problems(obj: Obj, index: set[tuple[str, str, str]], where: str) -> Iterator[str]:
    role = obj["roleRef"]
    role_ns = obj["metadata"].get("namespace") if role["kind"] == "Role" else None
    built_in = role["kind"] == "ClusterRole" and role["name"] in BUILT_IN_CLUSTER_ROLES
    if not built_in and _key(role["kind"], role["name"], role_ns) not in index:
        yield f"{where}: roleRef {role['kind']}/{role['name']} is not installed"
    for subject in obj.get("subjects", []):
        if subject["kind"] == "ServiceAccount":
            ns = subject.get("namespace") or obj["metadata"].get("namespace")
            if _key("ServiceAccount", subject["name"], ns) not in index:
                yield f"{where}: subject ServiceAccount {ns}/{subject['name']} is not installed"


def _service_problems(obj: Obj, objects: list[Obj], where: str) -> Iterator[str]:
    selector = obj["spec"].get("selector") or {}
    ns = obj["metadata"].get("namespace")
    selected = [
        w
        for w in workloads(objects)
        if w["metadata"].get("namespace") == ns
        and selector
        and all(
            (w["spec"]["template"]["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items()
        )
    ]
    if not selected:
        yield f"{where}: selector {selector} matches no workload's pods"
    for port in obj["spec"].get("ports", []):
        target = port.get("targetPort", port["port"])
        declared = [
            p
            for w in selected
            for c in containers(w)
            for p in c.get("ports", [])
            if target in (p.get("name"), p["containerPort"])
        ]
        if selected and not declared:
            yield f"{where}: targetPort {target} is not a port of the pods it selects"
