"""The defaulting the real API server does for common built-in kinds (a practical subset).

Applied on every write of a built-in kind, before ownership is recorded, like the real server's
scheme defaulting: Deployments get a strategy, containers an imagePullPolicy, ports a protocol,
Services a ClusterIP, Secrets' `stringData` is folded into base64 `data`, and so on.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

JSON = dict[str, Any]


class ShapeError(ValueError):
    """A field of a built-in kind has the wrong JSON type (the real server fails to decode it)."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        actual = "array" if isinstance(value, list) else type(value).__name__
        super().__init__(f"json: cannot unmarshal {actual} into Go struct field {field} of type {expected}")


def _obj(parent: JSON, key: str) -> JSON:
    """`parent[key]` as an object, created when absent."""
    value = parent.setdefault(key, {})
    if not isinstance(value, dict):
        raise ShapeError(key, "object", value)
    return value


def _items(parent: JSON, key: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError(key, "array", value)
    return value


def _ports(ports: Any) -> None:
    for port in ports or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _container(container: Any) -> None:
    if not isinstance(container, dict):
        return
    image = str(container.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    tag = last.split("@", 1)[0].split(":", 1)[1] if ":" in last.split("@", 1)[0] else ""
    if "@" not in last:
        container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
    else:
        container.setdefault("imagePullPolicy", "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    _ports(_items(container, "ports"))


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for key in ("containers", "initContainers"):
        for container in _items(spec, key):
            _container(container)


def _template(spec: JSON) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        pod_spec(template.get("spec"))


def _deployment(obj: JSON) -> None:
    spec = _obj(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = _obj(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _obj(strategy, "rollingUpdate")
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    _template(spec)


def _statefulset(obj: JSON) -> None:
    spec = _obj(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = _obj(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _obj(strategy, "rollingUpdate").setdefault("partition", 0)
    retention = _obj(spec, "persistentVolumeClaimRetentionPolicy")
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    _template(spec)


def _daemonset(obj: JSON) -> None:
    spec = _obj(obj, "spec")
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = _obj(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _obj(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    _template(spec)


def _replicaset(obj: JSON) -> None:
    spec = _obj(obj, "spec")
    spec.setdefault("replicas", 1)
    _template(spec)


def _job_spec(spec: JSON) -> None:
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _template(spec)


def _job(obj: JSON) -> None:
    _job_spec(_obj(obj, "spec"))


def _cronjob(obj: JSON) -> None:
    spec = _obj(obj, "spec")
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        job_spec = job_template.get("spec")
        if isinstance(job_spec, dict):
            _template(job_spec)


def _pod(obj: JSON) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)


def _secret(obj: JSON) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = _obj(obj, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _pvc(obj: JSON) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")


def _namespace(obj: JSON) -> None:
    _obj(obj["metadata"], "labels")["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    _obj(obj, "spec").setdefault("finalizers", ["kubernetes"])


class ServiceDefaults:
    """Service defaulting, including ClusterIP allocation from 10.96.0.0/12."""

    def __init__(self) -> None:
        self._next = int(ipaddress.IPv4Address("10.96.0.10"))

    def skip_allocated(self, addresses: Iterable[str]) -> None:
        """Continue after the highest ClusterIP already in use (after a state restore)."""
        for address in addresses:
            try:
                value = int(ipaddress.IPv4Address(address))
            except ValueError:
                continue
            self._next = max(self._next, value + 1)

    def __call__(self, obj: JSON, old: JSON | None) -> None:
        spec = _obj(obj, "spec")
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in _items(spec, "ports"):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        if spec["type"] == "ExternalName":
            return
        old_spec = (old or {}).get("spec") or {}
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        if not spec.get("clusterIP"):
            spec["clusterIP"] = str(ipaddress.IPv4Address(self._next))
            self._next += 1
        if spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")


_SIMPLE: dict[tuple[str, str], Callable[[JSON], None]] = {
    ("apps", "deployments"): _deployment,
    ("apps", "statefulsets"): _statefulset,
    ("apps", "daemonsets"): _daemonset,
    ("apps", "replicasets"): _replicaset,
    ("batch", "jobs"): _job,
    ("batch", "cronjobs"): _cronjob,
    ("", "pods"): _pod,
    ("", "secrets"): _secret,
    ("", "persistentvolumeclaims"): _pvc,
    ("", "namespaces"): _namespace,
}


class Defaulter:
    def __init__(self) -> None:
        self.services = ServiceDefaults()

    def __call__(self, key: tuple[str, str], obj: JSON, old: JSON | None) -> None:
        if key == ("", "services"):
            self.services(obj, old)
            return
        simple = _SIMPLE.get(key)
        if simple is not None:
            simple(obj)
