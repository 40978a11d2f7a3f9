"""kstatus rules, table-driven: what each kind must report to be Current, InProgress or Failed."""

from __future__ import annotations

from typing import Any

import pytest

from libs.kstatus import CURRENT, FAILED, IN_PROGRESS, NOT_FOUND, TERMINATING, compute, is_done

pytestmark = pytest.mark.unit


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def obj(
    api_version: str, kind: str, *, generation: int = 1, spec: Any = None, status: Any = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": generation},
    }
    if spec is not None:
        doc["spec"] = spec
    if status is not None:
        doc["status"] = status
    return doc


ROLLED_OUT = [
    cond("Available", "True", "MinimumReplicasAvailable"),
    cond("Progressing", "True", "NewReplicaSetAvailable"),
]


def deployment(status: dict[str, Any], replicas: int = 2, generation: int = 1) -> dict[str, Any]:
    return obj("apps/v1", "Deployment", generation=generation, spec={"replicas": replicas}, status=status)


CASES = [
    (
        "deployment rolled out",
        deployment(
            {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": ROLLED_OUT,
            }
        ),
        CURRENT,
        "Deployment is available. Replicas: 2",
    ),
    (
        "deployment with a new generation not observed yet",
        deployment({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2}, generation=2),
        IN_PROGRESS,
        "Deployment generation is 2, but latest observed generation is 1",
    ),
    (
        "deployment without status",
        deployment({}, replicas=1),
        IN_PROGRESS,
        "Replicas: 0/1",
    ),
    (
        "deployment half updated",
        deployment({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1}),
        IN_PROGRESS,
        "Updated: 1/2",
    ),
    (
        "deployment with old replicas terminating",
        deployment({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2}),
        IN_PROGRESS,
        "Pending termination: 1",
    ),
    (
        "deployment not available",
        deployment(
            {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 1,
            }
        ),
        IN_PROGRESS,
        "Available: 1/2",
    ),
    (
        "deployment replica set still updating",
        deployment(
            {
                "observedGeneration": 1,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [cond("Available", "True"), cond("Progressing", "True", "ReplicaSetUpdated")],
            }
        ),
        IN_PROGRESS,
        "ReplicaSet not Available",
    ),
    (
        "deployment past its progress deadline",
        deployment(
            {
                "observedGeneration": 1,
                "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")],
            }
        ),
        FAILED,
        "Progress deadline exceeded",
    ),
    (
        "statefulset rolled out",
        obj(
            "apps/v1",
            "StatefulSet",
            spec={"replicas": 1},
            status={
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "currentReplicas": 1,
                "updatedReplicas": 1,
                "currentRevision": "r1",
                "updateRevision": "r1",
            },
        ),
        CURRENT,
        "All replicas scheduled as expected. Replicas: 1",
    ),
    (
        "statefulset waiting for its update revision",
        obj(
            "apps/v1",
            "StatefulSet",
            spec={"replicas": 1},
            status={
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "currentReplicas": 1,
                "currentRevision": "r1",
                "updateRevision": "r2",
            },
        ),
        IN_PROGRESS,
        "Waiting for updated revision r2 (current: r1)",
    ),
    (
        "statefulset not ready",
        obj("apps/v1", "StatefulSet", spec={"replicas": 2}, status={"replicas": 2, "readyReplicas": 0}),
        IN_PROGRESS,
        "Ready: 0/2",
    ),
    (
        "statefulset partitioned rollout done",
        obj(
            "apps/v1",
            "StatefulSet",
            spec={"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
            status={"replicas": 3, "readyReplicas": 3, "updatedReplicas": 1},
        ),
        CURRENT,
        "Partition rollout complete. updated: 1",
    ),
    (
        "statefulset on delete",
        obj("apps/v1", "StatefulSet", spec={"updateStrategy": {"type": "OnDelete"}}, status={}),
        CURRENT,
        "StatefulSet is using the OnDelete strategy",
    ),
    (
        "daemonset on every node",
        obj(
            "apps/v1",
            "DaemonSet",
            status={
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
                "numberReady": 1,
            },
        ),
        CURRENT,
        "All replicas scheduled as expected. Replicas: 1",
    ),
    (
        "daemonset not ready",
        obj(
            "apps/v1",
            "DaemonSet",
            status={
                "desiredNumberScheduled": 2,
                "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
                "numberReady": 1,
            },
        ),
        IN_PROGRESS,
        "Ready: 1/2",
    ),
    (
        "daemonset without status",
        obj("apps/v1", "DaemonSet", status={}),
        IN_PROGRESS,
        "Missing .status.desiredNumberScheduled",
    ),
    (
        "job complete",
        obj(
            "batch/v1",
            "Job",
            spec={"completions": 1},
            status={"startTime": "t", "succeeded": 1, "conditions": [cond("Complete", "True")]},
        ),
        CURRENT,
        "Job Completed. succeeded: 1/1",
    ),
    (
        "job failed",
        obj(
            "batch/v1",
            "Job",
            status={
                "startTime": "t",
                "failed": 6,
                "conditions": [cond("Failed", "True", "BackoffLimitExceeded")],
            },
        ),
        FAILED,
        "Job Failed. failed: 6/1",
    ),
    (
        "job running",
        obj("batch/v1", "Job", status={"startTime": "t", "active": 1}),
        IN_PROGRESS,
        "Job in progress. success: 0, active: 1, failed: 0",
    ),
    ("job not started", obj("batch/v1", "Job", status={}), IN_PROGRESS, "Job not started"),
    (
        "pvc bound",
        obj("v1", "PersistentVolumeClaim", status={"phase": "Bound"}),
        CURRENT,
        "PVC is Bound",
    ),
    (
        "pvc pending",
        obj("v1", "PersistentVolumeClaim", status={"phase": "Pending"}),
        IN_PROGRESS,
        "PVC is not Bound. phase: Pending",
    ),
    (
        "pod ready",
        obj("v1", "Pod", status={"phase": "Running", "conditions": [cond("Ready", "True")]}),
        CURRENT,
        "Pod is Ready",
    ),
    (
        "pod crash looping",
        obj(
            "v1",
            "Pod",
            status={
                "phase": "Running",
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
            },
        ),
        FAILED,
        "Pod could not start: CrashLoopBackOff",
    ),
    (
        "crd established",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={"conditions": [cond("NamesAccepted", "True"), cond("Established", "True")]},
        ),
        CURRENT,
        "CRD is established",
    ),
    (
        "crd installing",
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", status={}),
        IN_PROGRESS,
        "Install in progress",
    ),
    (
        "crd with conflicting names",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={"conditions": [cond("NamesAccepted", "False", "NameConflict", "plural in use")]},
        ),
        FAILED,
        "CRD names not accepted: NameConflict: plural in use",
    ),
    (
        "custom resource ready",
        obj(
            "example.com/v1",
            "Widget",
            status={"observedGeneration": 1, "conditions": [cond("Ready", "True", "Succeeded", "all good")]},
        ),
        CURRENT,
        "Succeeded: all good",
    ),
    (
        "custom resource not ready yet",
        obj(
            "example.com/v1",
            "Widget",
            status={"observedGeneration": 1, "conditions": [cond("Ready", "False", "Waiting", "for a disk")]},
        ),
        IN_PROGRESS,
        "Waiting: for a disk",
    ),
    (
        "flux object at its CRD default observedGeneration",
        obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", status={"observedGeneration": -1}),
        IN_PROGRESS,
        "Kustomization generation is 1, but latest observed generation is -1",
    ),
    (
        "custom resource stalled",
        obj(
            "example.com/v1",
            "Widget",
            status={
                "observedGeneration": 1,
                "conditions": [
                    cond("Ready", "False", "Broken"),
                    cond("Stalled", "True", "Broken", "bad spec"),
                ],
            },
        ),
        FAILED,
        "Broken: bad spec",
    ),
    (
        "custom resource reconciling",
        obj(
            "example.com/v1",
            "Widget",
            status={"conditions": [cond("Reconciling", "True", "Progressing", "working")]},
        ),
        IN_PROGRESS,
        "Progressing: working",
    ),
    ("configmap", obj("v1", "ConfigMap"), CURRENT, "Resource is current"),
    (
        "load balancer without an address",
        obj("v1", "Service", spec={"type": "LoadBalancer"}, status={}),
        IN_PROGRESS,
        "LoadBalancer has no ingress address yet",
    ),
    ("cluster ip service", obj("v1", "Service", spec={"type": "ClusterIP"}), CURRENT, "Service is ready"),
    (
        "pdb budget not met",
        obj("policy/v1", "PodDisruptionBudget", status={"desiredHealthy": 2, "currentHealthy": 1}),
        IN_PROGRESS,
        "Budget not met. healthy replicas: 1/2",
    ),
]


@pytest.mark.parametrize(("doc", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kstatus_rules(doc: dict[str, Any], status: str, message: str) -> None:
    result = compute(doc)
    assert (result.status, result.message) == (status, message)
    assert is_done(result) == (status in (CURRENT, FAILED))


def test_missing_and_terminating_objects() -> None:
    assert compute(None).status == NOT_FOUND
    doc = obj("v1", "ConfigMap")
    doc["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert compute(doc).status == TERMINATING
