"""Server-side apply: managedFields, conflicts, force, shared ownership, removal, status, dry run."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from libs.kube_emulator import KubeEmulator

from .conftest import GITREPO_CRD, deployment

pytestmark = pytest.mark.integration

DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


def apply(
    emu: KubeEmulator,
    path: str,
    body: dict[str, Any],
    manager: str | None,
    *,
    force: bool = False,
    as_yaml: bool = False,
    status: bool = False,
    dry_run: bool = False,
) -> requests.Response:
    params: dict[str, str] = {}
    if manager:
        params["fieldManager"] = manager
    if force:
        params["force"] = "true"
    if dry_run:
        params["dryRun"] = "All"
    data = yaml.safe_dump(body) if as_yaml else json.dumps(body)
    url = f"{emu.url}{path}/{body['metadata']['name']}" + ("/status" if status else "")
    return requests.patch(
        url, data=data, params=params, headers={"Content-Type": "application/apply-patch+yaml"}, timeout=5
    )


def entry(obj: dict[str, Any], manager: str, operation: str = "Apply") -> dict[str, Any]:
    return next(
        e for e in obj["metadata"]["managedFields"] if e["manager"] == manager and e["operation"] == operation
    )


def test_apply_creates_with_real_managed_fields_format(emu: KubeEmulator) -> None:
    body = deployment("web", replicas=2)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    body["metadata"]["finalizers"] = ["example.com/keep"]
    reply = apply(emu, DEPLOY, body, "sluice", as_yaml=True)
    assert reply.status_code == 201
    obj = reply.json()
    mf = entry(obj, "sluice")
    assert mf["apiVersion"] == "apps/v1" and mf["fieldsType"] == "FieldsV1" and mf["time"].endswith("Z")
    fields = mf["fieldsV1"]
    assert fields["f:spec"]["f:replicas"] == {}
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert container["."] == {} and container["f:image"] == {} and container["f:name"] == {}
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in container["f:ports"]
    assert fields["f:metadata"]["f:finalizers"]['v:"example.com/keep"'] == {}
    assert fields["f:metadata"]["f:finalizers"]["."] == {}
    assert fields["f:spec"]["f:template"]["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    # the same apply again is a no-op
    again = apply(emu, DEPLOY, body, "sluice")
    assert again.status_code == 200
    assert again.json()["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_fieldmanager_is_required(emu: KubeEmulator) -> None:
    reply = apply(emu, DEPLOY, deployment("x"), None)
    assert reply.status_code == 400 and reply.json()["reason"] == "BadRequest"


def test_conflict_with_other_manager_then_force(emu: KubeEmulator) -> None:
    assert apply(emu, DEPLOY, deployment("web", replicas=2), "kubectl").status_code == 201
    mine = deployment("web", replicas=5)
    conflict = apply(emu, DEPLOY, mine, "sluice")
    assert conflict.status_code == 409
    status = conflict.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
    assert status["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".spec.replicas"}
    ]
    forced = apply(emu, DEPLOY, mine, "sluice", force=True)
    assert forced.status_code == 200
    obj = forced.json()
    assert obj["spec"]["replicas"] == 5
    assert "f:replicas" in entry(obj, "sluice")["fieldsV1"]["f:spec"]
    assert "f:replicas" not in entry(obj, "kubectl")["fieldsV1"]["f:spec"]


def test_conflict_with_an_update_manager_names_its_api_version(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(
        "default", deployment("upd", replicas=1), field_manager="helm"
    )
    reply = apply(emu, DEPLOY, deployment("upd", replicas=3), "sluice")
    assert reply.status_code == 409
    message = reply.json()["message"]
    assert message.startswith(
        'Apply failed with 1 conflict: conflict with "helm" using apps/v1: .spec.replicas'
    )


def test_same_value_is_shared_and_dropped_fields_are_removed(emu: KubeEmulator) -> None:
    first = deployment("shared", replicas=2)
    first["metadata"]["labels"] = {"a": "1", "b": "2"}
    apply(emu, DEPLOY, first, "one")
    second = deployment("shared", replicas=2)
    second["metadata"]["labels"] = {"a": "1"}
    shared = apply(emu, DEPLOY, second, "two")
    assert shared.status_code == 200
    obj = shared.json()
    assert "f:replicas" in entry(obj, "one")["fieldsV1"]["f:spec"]
    assert "f:replicas" in entry(obj, "two")["fieldsV1"]["f:spec"]
    # "one" stops sending label b (owned by nobody else): removed; label a is still owned by "two": kept
    third = deployment("shared", replicas=2)
    del third["spec"]["replicas"]
    third["metadata"]["labels"] = {}
    obj = apply(emu, DEPLOY, third, "one").json()
    assert obj["metadata"]["labels"] == {"a": "1"}
    assert obj["spec"]["replicas"] == 2  # still owned by "two"


def test_list_items_are_owned_by_merge_key(emu: KubeEmulator) -> None:
    base = deployment("multi")
    base["spec"]["template"]["spec"]["containers"] = [{"name": "app", "image": "app:1"}]
    apply(emu, DEPLOY, base, "one")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "multi"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "proxy:1"}]}}},
    }
    obj = apply(emu, DEPLOY, sidecar, "two").json()
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "sidecar"]
    # "two" drops its sidecar: only that item goes
    sidecar["spec"]["template"]["spec"]["containers"] = []
    del sidecar["spec"]
    obj = apply(emu, DEPLOY, sidecar, "two").json()
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_update_records_update_entry_from_user_agent(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_config_map("default", {"metadata": {"name": "ua"}, "data": {"a": "1"}})
    managers = [(m.manager, m.operation) for m in created.metadata.managed_fields]
    assert managers == [("OpenAPI-Generator", "Update")]
    patched = v1.patch_namespaced_config_map("ua", "default", {"data": {"b": "2"}}, field_manager="tool")
    entries = {m.manager: m for m in patched.metadata.managed_fields}
    assert entries["tool"].fields_v1 == {"f:data": {"f:b": {}}}
    assert entries["OpenAPI-Generator"].fields_v1 == {"f:data": {".": {}, "f:a": {}}}


def test_apply_to_status_subresource(emu: KubeEmulator) -> None:
    apply(emu, DEPLOY, deployment("st"), "sluice")
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "st"},
        "status": {"replicas": 1, "readyReplicas": 1},
        "spec": {"replicas": 9},
    }
    reply = apply(emu, DEPLOY, body, "controller", status=True)
    assert reply.status_code == 200
    obj = reply.json()
    assert obj["status"] == {"replicas": 1, "readyReplicas": 1} and obj["spec"]["replicas"] == 1
    status_entry = entry(obj, "controller")
    assert status_entry["subresource"] == "status" and "f:status" in status_entry["fieldsV1"]
    # .status in a main-resource apply is ignored
    body = deployment("st")
    body["status"] = {"replicas": 7}
    assert apply(emu, DEPLOY, body, "sluice").json()["status"]["replicas"] == 1


def test_apply_dry_run_and_custom_resources(emu: KubeEmulator, api: client.ApiClient) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(GITREPO_CRD)
    path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories"
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "r"},
        "spec": {
            "url": "https://example.com/x",
            "interval": "1m",
            "topics": ["a"],
            "hosts": [{"name": "h1", "ip": "1.1.1.1"}],
        },
    }
    dry = apply(emu, path, body, "sluice", dry_run=True)
    assert dry.status_code == 201
    assert requests.get(f"{emu.url}{path}/r", timeout=5).status_code == 404
    created = apply(emu, path, body, "sluice").json()
    fields = entry(created, "sluice")["fieldsV1"]["f:spec"]
    assert fields["f:topics"] == {".": {}, 'v:"a"': {}}
    assert fields["f:hosts"]['k:{"name":"h1"}'] == {".": {}, "f:ip": {}, "f:name": {}}
    other = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "r"},
        "spec": {"hosts": [{"name": "h2", "ip": "2.2.2.2"}], "topics": ["b"]},
    }
    merged = apply(emu, path, other, "other").json()
    assert [h["name"] for h in merged["spec"]["hosts"]] == ["h1", "h2"]
    assert merged["spec"]["topics"] == ["a", "b"]
    invalid = dict(body, spec=dict(body["spec"], url="ftp://nope"))
    rejected = apply(emu, path, invalid, "sluice", force=True)
    assert rejected.status_code == 422


def test_apply_with_stale_resource_version_conflicts(emu: KubeEmulator) -> None:
    created = apply(emu, DEPLOY, deployment("rv"), "sluice").json()
    body = deployment("rv", replicas=4)
    body["metadata"]["resourceVersion"] = str(int(created["metadata"]["resourceVersion"]) - 1)
    assert apply(emu, DEPLOY, body, "sluice").status_code == 409


def test_dynamic_client_server_side_apply(api: client.ApiClient) -> None:
    from kubernetes import dynamic

    deployments = dynamic.DynamicClient(api).resources.get(api_version="apps/v1", kind="Deployment")
    created = deployments.server_side_apply(
        body=deployment("dyn", replicas=2), namespace="default", field_manager="sluice"
    )
    assert created.spec.replicas == 2
    with pytest.raises(client.ApiException) as err:
        deployments.server_side_apply(
            body=deployment("dyn", replicas=3), namespace="default", field_manager="other"
        )
    assert err.value.status == 409
    forced = deployments.server_side_apply(
        body=deployment("dyn", replicas=3), namespace="default", field_manager="other", force_conflicts=True
    )
    assert forced.spec.replicas == 3
    owners = {m["manager"]: m["fieldsV1"] for m in forced.to_dict()["metadata"]["managedFields"]}
    assert "f:replicas" in owners["other"]["f:spec"] and "f:replicas" not in owners["sluice"]["f:spec"]


def test_port_keys_use_the_protocol_default(emu: KubeEmulator) -> None:
    body = deployment("ports")
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    obj = apply(emu, DEPLOY, body, "sluice").json()
    container = entry(obj, "sluice")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"app"}'
    ]
    assert container["f:ports"] == {
        'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
    }
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"}
    ]


def test_set_members_and_map_keys_the_applier_drops_are_removed(emu: KubeEmulator) -> None:
    body = deployment("drop")
    body["metadata"]["finalizers"] = ["a.example.com/x", "b.example.com/y"]
    body["metadata"]["annotations"] = {"keep": "1", "drop": "2"}
    apply(emu, DEPLOY, body, "sluice")
    body["metadata"]["finalizers"] = ["a.example.com/x"]
    body["metadata"]["annotations"] = {"keep": "1"}
    obj = apply(emu, DEPLOY, body, "sluice").json()
    assert obj["metadata"]["finalizers"] == ["a.example.com/x"]
    assert obj["metadata"]["annotations"] == {"keep": "1"}
    fields = entry(obj, "sluice")["fieldsV1"]["f:metadata"]
    assert fields["f:finalizers"] == {".": {}, 'v:"a.example.com/x"': {}}
    assert fields["f:annotations"] == {".": {}, "f:keep": {}}


def test_update_takes_ownership_so_the_applier_then_conflicts(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    apply(emu, DEPLOY, deployment("handover", replicas=2), "sluice")
    client.AppsV1Api(api).patch_namespaced_deployment(
        "handover", "default", {"spec": {"replicas": 4}}, field_manager="hpa"
    )
    reply = apply(emu, DEPLOY, deployment("handover", replicas=2), "sluice")
    assert reply.status_code == 409
    assert reply.json()["details"]["causes"][0]["message"] == 'conflict with "hpa" using apps/v1'
    # leaving the field out hands it over for good
    without = deployment("handover")
    del without["spec"]["replicas"]
    obj = apply(emu, DEPLOY, without, "sluice").json()
    assert obj["spec"]["replicas"] == 4
    assert "f:replicas" not in entry(obj, "sluice")["fieldsV1"]["f:spec"]


def test_apply_dry_run_on_existing_object_changes_nothing(emu: KubeEmulator) -> None:
    created = apply(emu, DEPLOY, deployment("dry", replicas=1), "sluice").json()
    preview = apply(emu, DEPLOY, deployment("dry", replicas=6), "sluice", dry_run=True)
    assert preview.status_code == 200 and preview.json()["spec"]["replicas"] == 6
    live = requests.get(f"{emu.url}{DEPLOY}/dry", timeout=5).json()
    assert live["spec"]["replicas"] == 1
    assert live["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
