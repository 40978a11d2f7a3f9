"""The kstatus rules (sigs.k8s.io/cli-utils `pkg/kstatus/status`) for the kinds Flux health-checks.

Order of evaluation, as in kstatus:

1. `metadata.deletionTimestamp` set → `Terminating`.
2. `status.observedGeneration` present and different from `metadata.generation` → `InProgress`
   (the controller has not seen the latest spec yet).
3. `Reconciling=True` → `InProgress`; `Stalled=True` → `Failed` (the kstatus standard conditions).
4. Kind rules: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod, PersistentVolumeClaim,
   Service, PodDisruptionBudget, CustomResourceDefinition.
5. Any other kind with a `Ready` condition: `True` → `Current`, otherwise `InProgress` with the
   condition's reason and message. An object with nothing to judge it by is `Current`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

CURRENT: Final = "Current"
IN_PROGRESS: Final = "InProgress"
FAILED: Final = "Failed"
TERMINATING: Final = "Terminating"
NOT_FOUND: Final = "NotFound"
UNKNOWN: Final = "Unknown"

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class ObjectStatus:
    """The computed status of one object and why."""

    status: str
    message: str

    @property
    def current(self) -> bool:
        return self.status == CURRENT

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def is_done(status: ObjectStatus) -> bool:
    """Whether waiting longer can change anything: `Current` or `Failed`."""
    return status.status in (CURRENT, FAILED)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    return default


def _conditions(obj: Obj) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for cond in _map(obj.get("status")).get("conditions") or []:
        if isinstance(cond, Mapping) and isinstance(cond.get("type"), str):
            found[cond["type"]] = cond
    return found


def _is_true(conds: Mapping[str, Mapping[str, Any]], type_: str) -> bool:
    return str(conds.get(type_, {}).get("status")) == "True"


def _text(cond: Mapping[str, Any]) -> str:
    reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
    if reason and message:
        return f"{reason}: {message}"
    return reason or message


def _progress(message: str) -> ObjectStatus:
    return ObjectStatus(IN_PROGRESS, message)


def _deployment(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    progressing_cond = conds.get("Progressing", {})
    if progressing_cond.get("reason") == "ProgressDeadlineExceeded":
        return ObjectStatus(FAILED, "Progress deadline exceeded")
    want = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"))
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas"))
    if want > replicas:
        return _progress(f"Replicas: {replicas}/{want}")
    if updated < want:
        return _progress(f"Updated: {updated}/{want}")
    if replicas > want:
        return _progress(f"Pending termination: {replicas - want}")
    if available < want:
        return _progress(f"Available: {available}/{want}")
    if ready < want:
        return _progress(f"Ready: {ready}/{want}")
    if not (
        str(progressing_cond.get("status")) == "True"
        and progressing_cond.get("reason") == "NewReplicaSetAvailable"
    ):
        return _progress("ReplicaSet not Available")
    if not _is_true(conds, "Available"):
        return _progress("Deployment not Available")
    return ObjectStatus(CURRENT, f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    strategy = _map(spec.get("updateStrategy"))
    if strategy.get("type") == "OnDelete":
        return ObjectStatus(CURRENT, "StatefulSet is using the OnDelete strategy")
    want = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"))
    ready = _int(status.get("readyReplicas"))
    current = _int(status.get("currentReplicas"))
    updated = _int(status.get("updatedReplicas"))
    if want > replicas:
        return _progress(f"Replicas: {replicas}/{want}")
    if ready < want:
        return _progress(f"Ready: {ready}/{want}")
    partition = _int(_map(strategy.get("rollingUpdate")).get("partition"))
    if partition > 0:
        expected = max(want - partition, 0)
        if updated < expected:
            return _progress(f"updated: {updated}/{expected}")
        return ObjectStatus(CURRENT, f"Partition rollout complete. updated: {updated}")
    if current < want:
        return _progress(f"current: {current}/{want}")
    current_rev, update_rev = status.get("currentRevision"), status.get("updateRevision")
    if current_rev != update_rev:
        return _progress(f"Waiting for updated revision {update_rev} (current: {current_rev})")
    return ObjectStatus(CURRENT, f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemonset(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    status = _map(obj.get("status"))
    if not isinstance(status.get("desiredNumberScheduled"), int):
        return _progress("Missing .status.desiredNumberScheduled")
    desired = _int(status.get("desiredNumberScheduled"))
    for field, label in (
        ("currentNumberScheduled", "Current"),
        ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"),
        ("numberReady", "Ready"),
    ):
        have = _int(status.get(field))
        if desired > have:
            return _progress(f"{label}: {have}/{desired}")
    return ObjectStatus(CURRENT, f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    want = _int(spec.get("replicas"), 1)
    for field, label in (
        ("fullyLabeledReplicas", "Labelled"),
        ("availableReplicas", "Available"),
        ("readyReplicas", "Ready"),
    ):
        have = _int(status.get(field))
        if want > have:
            return _progress(f"{label}: {have}/{want}")
    replicas = _int(status.get("replicas"))
    if replicas > want:
        return _progress(f"Pending termination: {replicas - want}")
    return ObjectStatus(CURRENT, f"ReplicaSet is available. Replicas: {replicas}")


def _job(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    completions = _int(spec.get("completions"), 1)
    succeeded, failed, active = (_int(status.get(k)) for k in ("succeeded", "failed", "active"))
    if _is_true(conds, "Failed"):
        return ObjectStatus(FAILED, f"Job Failed. failed: {failed}/{completions}")
    if _is_true(conds, "Complete"):
        return ObjectStatus(CURRENT, f"Job Completed. succeeded: {succeeded}/{completions}")
    if not status.get("startTime"):
        return _progress("Job not started")
    return _progress(f"Job in progress. success: {succeeded}, active: {active}, failed: {failed}")


def _pod(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    status = _map(obj.get("status"))
    phase = status.get("phase")
    if phase == "Succeeded":
        return ObjectStatus(CURRENT, "Pod has completed successfully")
    if phase == "Failed":
        return ObjectStatus(FAILED, "Pod has completed, but not successfully")
    for container in status.get("containerStatuses") or []:
        waiting = _map(_map(_map(container).get("state")).get("waiting"))
        if waiting.get("reason") in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"):
            return ObjectStatus(FAILED, f"Pod could not start: {waiting.get('reason')}")
    if phase == "Running":
        if _is_true(conds, "Ready"):
            return ObjectStatus(CURRENT, "Pod is Ready")
        return _progress("Pod is running but is not Ready")
    return _progress(f"Pod is in the {phase or 'Pending'} phase")


def _pvc(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    phase = _map(obj.get("status")).get("phase")
    if phase != "Bound":
        return _progress(f"PVC is not Bound. phase: {phase or 'Pending'}")
    return ObjectStatus(CURRENT, "PVC is Bound")


def _service(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    spec = _map(obj.get("spec"))
    if spec.get("type") == "LoadBalancer":
        ingress = _map(_map(obj.get("status")).get("loadBalancer")).get("ingress")
        if not ingress:
            return _progress("LoadBalancer has no ingress address yet")
    return ObjectStatus(CURRENT, "Service is ready")


def _pdb(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    status = _map(obj.get("status"))
    desired, healthy = _int(status.get("desiredHealthy")), _int(status.get("currentHealthy"))
    if healthy < desired:
        return _progress(f"Budget not met. healthy replicas: {healthy}/{desired}")
    return ObjectStatus(CURRENT, f"Budget is met. healthy replicas: {healthy}/{desired}")


def _crd(obj: Obj, conds: Mapping[str, Mapping[str, Any]]) -> ObjectStatus:
    if str(conds.get("NamesAccepted", {}).get("status")) == "False":
        return ObjectStatus(FAILED, f"CRD names not accepted: {_text(conds['NamesAccepted'])}")
    if _is_true(conds, "Established"):
        return ObjectStatus(CURRENT, "CRD is established")
    return _progress("Install in progress")


_KIND_RULES: dict[tuple[str, str], Callable[[Obj, Mapping[str, Mapping[str, Any]]], ObjectStatus]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("policy", "PodDisruptionBudget"): _pdb,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def compute(obj: Obj | None) -> ObjectStatus:
    """The kstatus status of `obj` (None: the object does not exist)."""
    if obj is None:
        return ObjectStatus(NOT_FOUND, "Resource not found")
    md = _map(obj.get("metadata"))
    if md.get("deletionTimestamp"):
        return ObjectStatus(TERMINATING, "Resource scheduled for deletion")
    status = _map(obj.get("status"))
    observed = status.get("observedGeneration")
    generation = md.get("generation")
    if isinstance(observed, int) and isinstance(generation, int) and observed != generation:
        return _progress(
            f"{obj.get('kind')} generation is {generation}, but latest observed generation is {observed}"
        )
    conds = _conditions(obj)
    if _is_true(conds, "Reconciling"):
        return _progress(_text(conds["Reconciling"]) or "Resource is reconciling")
    if _is_true(conds, "Stalled"):
        return ObjectStatus(FAILED, _text(conds["Stalled"]) or "Resource is stalled")
    rule = _KIND_RULES.get((_group(str(obj.get("apiVersion") or "")), str(obj.get("kind") or "")))
    if rule is not None:
        return rule(obj, conds)
    ready = conds.get("Ready")
    if ready is not None:
        if str(ready.get("status")) == "True":
            return ObjectStatus(CURRENT, _text(ready) or "Resource is Ready")
        return _progress(_text(ready) or "Resource is not Ready")
    return ObjectStatus(CURRENT, "Resource is current")
