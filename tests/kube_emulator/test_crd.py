"""CRD registration, custom resources through CustomObjectsApi and DynamicClient, schema handling."""

from __future__ import annotations

import copy
import json

import pytest
import requests
from kubernetes import client, dynamic
from kubernetes.client import ApiException

from libs.kube_emulator import KubeEmulator

from .conftest import GITREPO_CRD, wait_for

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "source.toolkit.fluxcd.io", "v1", "gitrepositories"


def repo(obj_name: str, **spec: object) -> dict:
    body = {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m"}
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GitRepository",
        "metadata": {"name": obj_name},
        "spec": body,
    }


@pytest.fixture
def crd(api: client.ApiClient) -> dict:
    ext = client.ApiextensionsV1Api(api)
    created = ext.create_custom_resource_definition(GITREPO_CRD)
    return api.sanitize_for_serialization(created)


def test_crd_is_established_and_served(api: client.ApiClient, crd: dict) -> None:
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "True" and conditions["Established"]["status"] == "True"
    assert crd["status"]["acceptedNames"]["kind"] == "GitRepository"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["gitrepo"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    versions = [v.version for v in groups[GROUP].versions]
    assert versions == ["v1", "v1beta2"] and groups[GROUP].preferred_version.version == "v1"
    listing = api.call_api(f"/apis/{GROUP}/v1", "GET", response_type="object", _return_http_data_only=True)
    resources = {r["name"]: r for r in listing["resources"]}
    assert resources["gitrepositories"]["kind"] == "GitRepository"
    assert resources["gitrepositories"]["shortNames"] == ["gitrepo"]
    assert resources["gitrepositories"]["categories"] == ["fluxcd"]
    assert "gitrepositories/status" in resources


def test_custom_objects_crud_defaults_and_status(api: client.ApiClient, crd: dict) -> None:
    co = client.CustomObjectsApi(api)
    created = co.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, repo("podinfo"))
    assert created["spec"]["timeout"] == "60s" and created["spec"]["provider"] == "generic"  # schema defaults
    assert created["metadata"]["generation"] == 1
    # status is ignored on the main resource, set through /status
    created["status"] = {"observedGeneration": 1}
    created["spec"]["interval"] = "5m"
    updated = co.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "podinfo", created)
    assert "status" not in updated and updated["metadata"]["generation"] == 2
    with_status = co.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "podinfo",
        {"status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}},
    )
    assert with_status["status"]["observedGeneration"] == 2 and with_status["metadata"]["generation"] == 2
    listed = co.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "GitRepositoryList" and [i["metadata"]["name"] for i in listed["items"]] == [
        "podinfo"
    ]
    # served at another version: same object, different apiVersion
    other = co.get_namespaced_custom_object(GROUP, "v1beta2", "default", PLURAL, "podinfo")
    assert other["apiVersion"] == f"{GROUP}/v1beta2" and other["spec"]["url"].startswith("https://")
    co.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "podinfo")
    assert co.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"] == []


def test_dynamic_client_discovers_crd(api: client.ApiClient, crd: dict) -> None:
    dyn = dynamic.DynamicClient(api)
    repos = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="GitRepository")
    repos.create(body=repo("dyn"), namespace="default")
    got = repos.get(name="dyn", namespace="default")
    assert got.spec.url == "https://github.com/stefanprodan/podinfo"
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, namespace="default")
    assert [i.metadata.name for i in cms.get(namespace="default").items] == ["c"]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"url": "ftp://x"},
            "spec.url",
            "spec.url: Invalid value: \"ftp://x\": spec.url in body should match '^(http|https|ssh)://.*$'",
        ),
        (
            {"depth": "3"},
            "spec.depth",
            'spec.depth: Invalid value: "string": spec.depth in body must be of type integer: "string"',
        ),
        (
            {"depth": 1.5},
            "spec.depth",
            'spec.depth: Invalid value: "number": spec.depth in body must be of type integer: "number"',
        ),
        (
            {"depth": 11},
            "spec.depth",
            "spec.depth: Invalid value: 11: spec.depth in body should be less than or equal to 10",
        ),
        (
            {"depth": -1},
            "spec.depth",
            "spec.depth: Invalid value: -1: spec.depth in body should be greater than or equal to 0",
        ),
        (
            {"provider": "gitlab"},
            "spec.provider",
            'spec.provider: Unsupported value: "gitlab": supported values: "generic", "azure", "github"',
        ),
        (
            {"name": ""},
            "spec.name",
            'spec.name: Invalid value: "": spec.name in body should be at least 1 chars long',
        ),
        ({"name": "toolong"}, "spec.name", "spec.name: Too long: may not be more than 5 bytes"),
        (
            {"topics": []},
            "spec.topics",
            "spec.topics: Invalid value: 0: spec.topics in body should have at least 1 items",
        ),
        (
            {"include": [{"repository": {}}] * 3},
            "spec.include",
            "spec.include: Too many: 3: must have at most 2 items",
        ),
        (
            {"include": [{"toPath": "x"}]},
            "spec.include[0].repository",
            "spec.include[0].repository: Required value",
        ),
        (
            {"suspend": "yes"},
            "spec.suspend",
            'spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
        ),
        (
            {"port": 1.5},
            "spec.port",
            'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"',
        ),
        (
            {"labels": {"a": 1}},
            "spec.labels.a",
            'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
        ),
        (
            {"since": "yesterday"},
            "spec.since",
            'spec.since: Invalid value: "yesterday": spec.since in body must be of type date-time: "yesterday"',
        ),
    ],
)
def test_schema_validation_errors(
    api: client.ApiClient, crd: dict, spec: dict, field: str, message: str
) -> None:
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, repo("x", **spec))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == f'GitRepository.{GROUP} "x" is invalid: {message}'
    assert body["details"]["kind"] == "GitRepository" and body["details"]["group"] == GROUP
    assert [c["field"] for c in body["details"]["causes"]] == [field]


def test_required_fields_and_valid_values(api: client.ApiClient, crd: dict) -> None:
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            {"apiVersion": f"{GROUP}/v1", "kind": "GitRepository", "metadata": {"name": "r"}, "spec": {}},
        )
    body = json.loads(err.value.body)
    assert sorted(c["field"] for c in body["details"]["causes"]) == ["spec.interval", "spec.url"]
    assert body["message"].startswith(f'GitRepository.{GROUP} "r" is invalid: [')
    ok = co.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        repo(
            "fine",
            depth=3,
            ratio=1,
            port="http",
            ignore=None,
            since="2024-05-01T10:00:00Z",
            topics=["a"],
        ),
    )
    assert ok["spec"]["port"] == "http" and ok["spec"]["ignore"] is None


def test_unknown_fields_are_pruned_unless_preserved(api: client.ApiClient, crd: dict) -> None:
    co = client.CustomObjectsApi(api)
    body = repo("pruned", bogus=True, extra={"anything": {"goes": [1]}})
    body["spec"]["include"] = [{"repository": {"name": "a", "junk": 1}, "nope": 2}]
    body["topLevelJunk"] = 1
    created = co.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "bogus" not in created["spec"] and "topLevelJunk" not in created
    assert created["spec"]["extra"] == {"anything": {"goes": [1]}}
    assert created["spec"]["include"] == [{"repository": {"name": "a"}}]


def test_cr_metadata_name_must_be_dns_subdomain(api: client.ApiClient, crd: dict) -> None:
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, repo("Not_Valid")
        )
    assert (
        err.value.status == 422
        and json.loads(err.value.body)["details"]["causes"][0]["field"] == "metadata.name"
    )


def test_invalid_crd_is_rejected(api: client.ApiClient) -> None:
    bad = copy.deepcopy(GITREPO_CRD)
    bad["metadata"]["name"] = "wrong.example.com"
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(api).create_custom_resource_definition(bad)
    assert err.value.status == 422
    assert json.loads(err.value.body)["details"]["causes"][0]["field"] == "metadata.name"


def test_deleting_crd_removes_kind_and_objects(api: client.ApiClient, crd: dict) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, repo("gone"))
    client.ApiextensionsV1Api(api).delete_custom_resource_definition(GITREPO_CRD["metadata"]["name"])
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert GROUP not in groups
    with pytest.raises(ApiException) as err:
        co.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert err.value.status == 404
    # registering again starts empty
    client.ApiextensionsV1Api(api).create_custom_resource_definition(GITREPO_CRD)
    assert co.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"] == []


def test_cluster_scoped_crd(api: client.ApiClient) -> None:
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    client.ApiextensionsV1Api(api).create_custom_resource_definition(body)
    co = client.CustomObjectsApi(api)
    co.create_cluster_custom_object(
        "example.com",
        "v1alpha1",
        "widgets",
        {
            "apiVersion": "example.com/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"any": 1},
        },
    )
    assert co.get_cluster_custom_object("example.com", "v1alpha1", "widgets", "w")["spec"] == {"any": 1}


def test_table_output_uses_printer_columns(emu: KubeEmulator, api: client.ApiClient, crd: dict) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, repo("tbl")
    )
    reply = requests.get(
        f"{emu.url}/apis/{GROUP}/v1/namespaces/default/gitrepositories",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
        timeout=5,
    )
    table = reply.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "URL", "Age"]
    assert table["rows"][0]["cells"][:2] == ["tbl", "https://github.com/stefanprodan/podinfo"]


def test_crd_update_changes_schema(api: client.ApiClient, crd: dict) -> None:
    ext = client.ApiextensionsV1Api(api)
    current = api.sanitize_for_serialization(
        ext.read_custom_resource_definition(GITREPO_CRD["metadata"]["name"])
    )
    current["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "branch"
    ] = {"type": "string", "default": "main"}
    ext.replace_custom_resource_definition(current["metadata"]["name"], current)
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, repo("b")
    )
    assert created["spec"]["branch"] == "main"
    wait_for(lambda: True)


def test_field_validation_strict_and_warn(emu: KubeEmulator, crd: dict) -> None:
    url = f"{emu.url}/apis/{GROUP}/v1/namespaces/default/gitrepositories"
    body = repo("strict", bogus=1)
    strict = requests.post(url, params={"fieldValidation": "Strict"}, json=body, timeout=5)
    assert strict.status_code == 400
    assert strict.json()["message"] == (
        'GitRepository in version "v1" cannot be handled as a GitRepository: '
        'strict decoding error: unknown field "spec.bogus"'
    )
    warned = requests.post(url, json=body, timeout=5)
    assert warned.status_code == 201 and "bogus" not in warned.json()["spec"]
    assert warned.headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'
    ignored = requests.post(
        url, params={"fieldValidation": "Ignore"}, json=repo("ignored", bogus=1), timeout=5
    )
    assert ignored.status_code == 201 and "Warning" not in ignored.headers


def test_crd_scale_subresource(api: client.ApiClient) -> None:
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Pool", "plural": "pools"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.size",
                            "statusReplicasPath": ".status.size",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer"},
                                        "selector": {"type": "string"},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    client.ApiextensionsV1Api(api).create_custom_resource_definition(body)
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "pools",
        {"apiVersion": "example.com/v1", "kind": "Pool", "metadata": {"name": "p"}, "spec": {"size": 1}},
    )
    co.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "pools", "p", {"status": {"size": 1, "selector": "app=p"}}
    )
    scale = co.get_namespaced_custom_object_scale("example.com", "v1", "default", "pools", "p")
    assert scale["spec"]["replicas"] == 1 and scale["status"] == {"replicas": 1, "selector": "app=p"}
    co.patch_namespaced_custom_object_scale(
        "example.com", "v1", "default", "pools", "p", {"spec": {"replicas": 3}}
    )
    assert co.get_namespaced_custom_object("example.com", "v1", "default", "pools", "p")["spec"]["size"] == 3


def test_the_projects_flux_crds_register_and_serve(api: client.ApiClient) -> None:
    from pathlib import Path

    import yaml

    crd_dir = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "crds"
    docs = [
        d
        for f in sorted(crd_dir.glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    ]
    assert len(docs) == 13, "deploy/k8s/crds holds the 13 generated Flux CRDs"
    dyn = dynamic.DynamicClient(api)
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    for doc in docs:
        applied = crds.server_side_apply(body=doc, field_manager="sluice").to_dict()
        established = {c["type"]: c["status"] for c in applied["status"]["conditions"]}
        assert established["Established"] == "True", doc["metadata"]["name"]
    dyn = dynamic.DynamicClient(api)  # fresh discovery
    for doc in docs:
        spec = doc["spec"]
        for version in (v["name"] for v in spec["versions"] if v.get("served", True)):
            resource = dyn.resources.get(api_version=f"{spec['group']}/{version}", kind=spec["names"]["kind"])
            assert resource.namespaced == (spec["scope"] == "Namespaced")
    gitrepo_versions = [
        d for d in docs if d["metadata"]["name"] == "gitrepositories.source.toolkit.fluxcd.io"
    ]
    if gitrepo_versions:
        repos = dyn.resources.get(api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository")
        created = repos.server_side_apply(
            body={
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "podinfo", "namespace": "default"},
                "spec": {
                    "interval": "1m",
                    "url": "https://github.com/stefanprodan/podinfo",
                    "ref": {"branch": "master"},
                },
            },
            field_manager="sluice",
        ).to_dict()
        assert created["spec"]["ref"] == {"branch": "master"}
