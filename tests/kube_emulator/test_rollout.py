"""The rollout loop: workloads report rolled out / complete, or hold and fail on request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from libs.kube_emulator import ROLLOUT_ANNOTATION, KubeEmulator

from .conftest import deployment, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def rollout_api(tmp_path: Path) -> Iterator[client.ApiClient]:
    with KubeEmulator.in_thread(rollout_delay=0.02) as emu:
        api = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        yield api
        api.close()


def conditions(obj: object) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in (obj.status.conditions or [])}  # type: ignore[attr-defined]


def job(name: str, annotations: dict[str, str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}
            }
        },
    }


def test_deployment_rolls_out_each_generation(rollout_api: client.ApiClient) -> None:
    apps = client.AppsV1Api(rollout_api)
    apps.create_namespaced_deployment("default", deployment("web", replicas=3))
    ready = wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment("web", "default")).status
            and d.status.observed_generation == 1
            and d
        )
    )
    assert (
        ready.status.replicas,
        ready.status.updated_replicas,
        ready.status.ready_replicas,
        ready.status.available_replicas,
    ) == (3, 3, 3, 3)
    assert conditions(ready) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    wait_for(lambda: apps.read_namespaced_deployment("web", "default").status.observed_generation == 2)
    assert apps.read_namespaced_deployment("web", "default").status.ready_replicas == 5


def test_hold_and_fail_annotations(rollout_api: client.ApiClient) -> None:
    apps = client.AppsV1Api(rollout_api)
    apps.create_namespaced_deployment("default", deployment("held", annotations={ROLLOUT_ANNOTATION: "hold"}))
    apps.create_namespaced_deployment("default", deployment("bad", annotations={ROLLOUT_ANNOTATION: "fail"}))
    held = wait_for(lambda: (d := apps.read_namespaced_deployment("held", "default")).status and d)
    assert conditions(held)["Progressing"] == ("True", "ReplicaSetUpdated")
    assert conditions(held)["Available"][0] == "False" and not held.status.ready_replicas
    bad = wait_for(lambda: (d := apps.read_namespaced_deployment("bad", "default")).status and d)
    assert conditions(bad)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    # releasing the hold lets it finish
    apps.patch_namespaced_deployment(
        "held", "default", {"metadata": {"annotations": {ROLLOUT_ANNOTATION: None}}}
    )
    wait_for(lambda: apps.read_namespaced_deployment("held", "default").status.ready_replicas == 1)


def test_jobs_complete_or_fail(rollout_api: client.ApiClient) -> None:
    batch = client.BatchV1Api(rollout_api)
    batch.create_namespaced_job("default", job("ok"))
    batch.create_namespaced_job("default", job("boom", {ROLLOUT_ANNOTATION: "fail"}))
    batch.create_namespaced_job("default", job("wait", {ROLLOUT_ANNOTATION: "hold"}))
    done = wait_for(
        lambda: (j := batch.read_namespaced_job("ok", "default")).status and j.status.succeeded and j
    )
    assert conditions(done)["Complete"] == ("True", "CompletionsReached") and done.status.completion_time
    failed = wait_for(
        lambda: (j := batch.read_namespaced_job("boom", "default")).status and j.status.failed and j
    )
    assert conditions(failed)["Failed"] == ("True", "BackoffLimitExceeded")
    waiting = wait_for(lambda: (j := batch.read_namespaced_job("wait", "default")).status and j)
    assert waiting.status.active == 1 and not waiting.status.conditions


def test_statefulsets_daemonsets_replicasets(rollout_api: client.ApiClient) -> None:
    apps = client.AppsV1Api(rollout_api)
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    apps.create_namespaced_stateful_set(
        "default",
        {
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"a": "b"}},
                "template": template,
            },
        },
    )
    apps.create_namespaced_daemon_set(
        "default",
        {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template},
        },
    )
    apps.create_namespaced_replica_set(
        "default",
        {
            "metadata": {"name": "rs"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": template},
        },
    )
    sts = wait_for(lambda: (s := apps.read_namespaced_stateful_set("db", "default")).status and s)
    assert sts.status.ready_replicas == 2 and sts.status.current_revision == sts.status.update_revision
    ds = wait_for(lambda: (d := apps.read_namespaced_daemon_set("agent", "default")).status and d)
    assert ds.status.number_ready == ds.status.desired_number_scheduled == 1
    rs = wait_for(lambda: (r := apps.read_namespaced_replica_set("rs", "default")).status and r)
    assert rs.status.ready_replicas == 2


def test_rollout_off_leaves_status_alone(emu: KubeEmulator, api: client.ApiClient) -> None:
    assert emu.rollout is None
    apps = client.AppsV1Api(api)  # the default fixture runs with rollout=False
    apps.create_namespaced_deployment("default", deployment("idle"))
    # a write after the would-be delay proves the loop had its chance: status stays unset
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "tick"}})
    assert apps.read_namespaced_deployment("idle", "default").status is None


def test_persistent_volume_claims_bind(rollout_api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(rollout_api)
    v1.create_namespaced_persistent_volume_claim(
        "default",
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    bound = wait_for(
        lambda: (c := v1.read_namespaced_persistent_volume_claim("data", "default")).status and c
    )
    assert bound.status.phase == "Bound" and bound.status.capacity == {"storage": "1Gi"}
