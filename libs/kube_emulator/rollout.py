"""A tiny stand-in for the controllers and kubelets of a cluster: workloads report rolled out.

After `delay` seconds, Deployments, StatefulSets, DaemonSets and ReplicaSets get a status showing
their current generation rolled out and ready, Jobs complete and PersistentVolumeClaims are Bound. The annotation
`emulator.sluice.dev/rollout` changes that: `hold` leaves the object progressing forever, `fail`
makes a Job fail and a Deployment report `Progressing=False` (`ProgressDeadlineExceeded`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from .cluster import Cluster
from .errors import ApiError
from .store import Event, TypeKey

JSON = dict[str, Any]

ANNOTATION = "emulator.sluice.dev/rollout"
MANAGER = "kube-controller-manager"
WORKLOADS: set[TypeKey] = {
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("", "persistentvolumeclaims"),
}

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _revision(obj: JSON) -> str:
    spec = repr(sorted((obj.get("spec") or {}).get("template", {}).items()))
    return hashlib.sha256(spec.encode()).hexdigest()[:10]


def _nonzero(status: JSON) -> JSON:
    return {k: v for k, v in status.items() if v not in (0, None)}


def _condition(ctype: str, status: str, reason: str, message: str, previous: JSON) -> JSON:
    for old in previous.get("conditions") or []:
        if old.get("type") == ctype and old.get("status") == status and old.get("reason") == reason:
            return dict(old)
    stamp = _now()
    cond = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
    }
    return cond


def _deployment_condition(ctype: str, status: str, reason: str, message: str, previous: JSON) -> JSON:
    """Deployment conditions also carry lastUpdateTime."""
    cond = _condition(ctype, status, reason, message, previous)
    cond.setdefault("lastUpdateTime", cond["lastTransitionTime"])
    return cond


def _deployment(obj: JSON, mode: str) -> JSON:
    meta, spec, prev = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    rs_name = f"{meta['name']}-{_revision(obj)}"
    if mode == "ready":
        status = _nonzero(
            {
                "observedGeneration": meta.get("generation", 1),
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        )
        status["conditions"] = [
            _deployment_condition(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", prev
            ),
            _deployment_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                prev,
            ),
        ]
        return status
    status = _nonzero(
        {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "unavailableReplicas": replicas,
        }
    )
    progressing = (
        _deployment_condition(
            "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', prev
        )
        if mode == "hold"
        else _deployment_condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            prev,
        )
    )
    status["conditions"] = [
        _deployment_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            prev,
        ),
        progressing,
    ]
    return status


def _statefulset(obj: JSON, mode: str) -> JSON:
    meta, spec, prev = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    revision = f"{meta['name']}-{_revision(obj)}"
    ready = replicas if mode == "ready" else 0
    return {
        "observedGeneration": meta.get("generation", 1),
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": replicas if mode == "ready" else 0,
        "updatedReplicas": replicas if mode == "ready" else 0,
        "availableReplicas": ready,
        "currentRevision": revision if mode == "ready" else prev.get("currentRevision", revision),
        "updateRevision": revision,
        "collisionCount": 0,
    }


def _daemonset(obj: JSON, mode: str) -> JSON:
    ready = 1 if mode == "ready" else 0
    return {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "updatedNumberScheduled": 1,
        "numberAvailable": ready,
        **({} if ready else {"numberUnavailable": 1}),
    }


def _replicaset(obj: JSON, mode: str) -> JSON:
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    ready = replicas if mode == "ready" else 0
    return _nonzero(
        {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
    ) | {"replicas": replicas}


def _job(obj: JSON, mode: str) -> JSON | None:
    spec, prev = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("suspend"):
        return None
    for cond in prev.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return None
    start = prev.get("startTime") or _now()
    if mode == "hold":
        return {"startTime": start, "active": 1, "ready": 0}
    if mode == "fail":
        return {
            "startTime": start,
            "failed": int(spec.get("backoffLimit", 6)) + 1,
            "ready": 0,
            "conditions": [
                _condition(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    prev,
                ),
                _condition(
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    prev,
                ),
            ],
        }
    completions = int(spec.get("completions", 1) or 1)
    return {
        "startTime": start,
        "completionTime": _now(),
        "succeeded": completions,
        "ready": 0,
        "conditions": [
            _condition(
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                prev,
            ),
            _condition(
                "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", prev
            ),
        ],
    }


def _pvc(obj: JSON, mode: str) -> JSON:
    if mode != "ready":
        return {"phase": "Pending"}
    spec = obj.get("spec") or {}
    status: JSON = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"])}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is not None:
        status["capacity"] = {"storage": storage}
    return status


def desired_status(key: TypeKey, obj: JSON) -> JSON | None:
    mode = ((obj["metadata"].get("annotations") or {}).get(ANNOTATION) or "ready").strip().lower()
    if mode not in ("hold", "fail"):
        mode = "ready"
    resource = key[1]
    if resource == "deployments":
        return _deployment(obj, mode)
    if resource == "statefulsets":
        return _statefulset(obj, mode)
    if resource == "daemonsets":
        return _daemonset(obj, mode)
    if resource == "replicasets":
        return _replicaset(obj, mode)
    if resource == "jobs":
        return _job(obj, mode)
    if resource == "persistentvolumeclaims":
        return _pvc(obj, mode)
    return None


class Rollout:
    """Listens to the store and writes workload status through the status subresource."""

    def __init__(self, cluster: Cluster, delay: float = 0.05) -> None:
        self.cluster = cluster
        self.delay = delay
        self._pending: dict[tuple[TypeKey, str, str], asyncio.TimerHandle] = {}
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self.cluster.add_listener(self._on_event)
        for key in WORKLOADS:
            for obj in list(self.cluster.store.iter(key, None)):
                self._schedule(key, obj)

    async def stop(self) -> None:
        self._running = False
        self.cluster.remove_listener(self._on_event)
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()

    def _on_event(self, event: Event) -> None:
        if event.key not in WORKLOADS:
            return
        ref = (event.key, event.namespace, event.obj["metadata"]["name"])
        if event.type == "DELETED":
            handle = self._pending.pop(ref, None)
            if handle is not None:
                handle.cancel()
            return
        self._schedule(event.key, event.obj)

    def _schedule(self, key: TypeKey, obj: JSON) -> None:
        meta = obj["metadata"]
        ref = (key, meta.get("namespace", ""), meta["name"])
        if ref in self._pending or meta.get("deletionTimestamp"):
            return
        loop = asyncio.get_running_loop()
        self._pending[ref] = loop.call_later(self.delay, self._reconcile, ref)

    def _reconcile(self, ref: tuple[TypeKey, str, str]) -> None:
        self._pending.pop(ref, None)
        if not self._running:
            return
        key, ns, name = ref
        rt = self.cluster.types.get(key)
        obj = self.cluster.store.get(key, ns, name)
        if rt is None or obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        status = desired_status(key, obj)
        if status is None or status == obj.get("status"):
            return
        try:
            self.cluster.write(
                rt, rt.storage_version, obj, {"status": status}, MANAGER, "Update", "status", False
            )
        except ApiError as err:
            log.warning("rollout could not update %s/%s: %s", ns, name, err.message)
