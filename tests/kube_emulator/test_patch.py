"""PATCH: JSON merge patch, JSON patch, strategic merge patch (built-ins) and 415 for custom resources."""

from __future__ import annotations

import json

import pytest
import requests
from kubernetes import client
from kubernetes.client import ApiException

from libs.kube_emulator import KubeEmulator

from .conftest import GITREPO_CRD, deployment

pytestmark = pytest.mark.integration


def patch(emu: KubeEmulator, path: str, body: object, content_type: str) -> requests.Response:
    return requests.patch(
        f"{emu.url}{path}", data=json.dumps(body), headers={"Content-Type": content_type}, timeout=5
    )


def test_merge_patch_sets_and_removes_keys(emu: KubeEmulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "m"}, "data": {"a": "1", "b": "2"}})
    reply = patch(
        emu,
        "/api/v1/namespaces/default/configmaps/m",
        {"data": {"a": None, "c": "3"}},
        "application/merge-patch+json",
    )
    assert reply.status_code == 200 and reply.json()["data"] == {"b": "2", "c": "3"}


def test_json_patch_operations_and_failed_test(emu: KubeEmulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "j"}, "data": {"a": "1"}})
    ops = [
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ]
    reply = patch(emu, "/api/v1/namespaces/default/configmaps/j", ops, "application/json-patch+json")
    assert reply.status_code == 200
    assert reply.json()["data"] == {"a": "9", "b": "2"} and reply.json()["metadata"]["labels"] == {"x": "y"}
    failing = patch(
        emu,
        "/api/v1/namespaces/default/configmaps/j",
        [{"op": "test", "path": "/data/a", "value": "1"}],
        "application/json-patch+json",
    )
    assert failing.status_code == 422 and failing.json()["kind"] == "Status"
    # the python client sends a list body as JSON patch
    patched = v1.patch_namespaced_config_map("j", "default", [{"op": "remove", "path": "/data/b"}])
    assert patched.data == {"a": "9"}


def test_strategic_merge_patch_merges_containers_by_name(emu: KubeEmulator, api: client.ApiClient) -> None:
    body = deployment("sm")
    body["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "app",
            "image": "app:1",
            "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80}],
        },
        {"name": "side", "image": "side:1"},
    ]
    client.AppsV1Api(api).create_namespaced_deployment("default", body)
    smp = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]
                }
            }
        }
    }
    reply = patch(
        emu, "/apis/apps/v1/namespaces/default/deployments/sm", smp, "application/strategic-merge-patch+json"
    )
    assert reply.status_code == 200
    containers = reply.json()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "side"]
    assert containers[0]["image"] == "app:2"
    assert containers[0]["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}] or containers[
        0
    ]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert reply.json()["metadata"]["generation"] == 2
    # the typed client's default patch type for dicts is strategic merge
    patched = client.AppsV1Api(api).patch_namespaced_deployment(
        "sm",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["app"]


def test_strategic_merge_is_415_for_custom_resources(emu: KubeEmulator, api: client.ApiClient) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(GITREPO_CRD)
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        "source.toolkit.fluxcd.io",
        "v1",
        "default",
        "gitrepositories",
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "g"},
            "spec": {"url": "https://x.example/r", "interval": "1m"},
        },
    )
    path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/g"
    reply = patch(emu, path, {"spec": {"interval": "2m"}}, "application/strategic-merge-patch+json")
    assert reply.status_code == 415 and reply.json()["reason"] == "UnsupportedMediaType"
    # CustomObjectsApi sends merge patches
    patched = co.patch_namespaced_custom_object(
        "source.toolkit.fluxcd.io",
        "v1",
        "default",
        "gitrepositories",
        "g",
        {"spec": {"interval": "2m", "suspend": True}},
    )
    assert patched["spec"]["interval"] == "2m" and patched["spec"]["suspend"] is True
    assert patched["metadata"]["generation"] == 2
    # patches are validated like any write
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            "source.toolkit.fluxcd.io",
            "v1",
            "default",
            "gitrepositories",
            "g",
            {"spec": {"url": "ftp://bad"}},
        )
    assert err.value.status == 422


def test_patch_missing_object_is_404_and_stale_rv_is_409(emu: KubeEmulator, api: client.ApiClient) -> None:
    missing = patch(
        emu, "/api/v1/namespaces/default/configmaps/none", {"data": {}}, "application/merge-patch+json"
    )
    assert missing.status_code == 404
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "p"}})
    stale = patch(
        emu,
        "/api/v1/namespaces/default/configmaps/p",
        {"metadata": {"resourceVersion": "1"}, "data": {"a": "b"}},
        "application/merge-patch+json",
    )
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
