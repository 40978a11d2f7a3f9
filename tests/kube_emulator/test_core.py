"""CRUD, discovery, selectors, resourceVersion/generation, Status errors and namespaces."""

from __future__ import annotations

import json

import pytest
import requests
from kubernetes import client
from kubernetes.client import ApiException

from libs.kube_emulator import KubeEmulator

from .conftest import deployment

pytestmark = pytest.mark.integration


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_version_and_legacy_discovery(emu: KubeEmulator, api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "32")
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    core = client.CoreV1Api(api).get_api_resources()
    by_name = {r.name: r for r in core.resources}
    assert by_name["configmaps"].kind == "ConfigMap" and by_name["configmaps"].namespaced
    assert by_name["configmaps"].short_names == ["cm"]
    assert not by_name["namespaces"].namespaced
    assert "pods/status" in by_name
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    for group in (
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
        "coordination.k8s.io",
        "storage.k8s.io",
        "autoscaling",
        "policy",
        "scheduling.k8s.io",
        "admissionregistration.k8s.io",
        "apiregistration.k8s.io",
    ):
        assert group in groups, group
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments"].categories == ["all"] and "deployments/status" in apps
    assert groups["apps"].preferred_version.group_version == "apps/v1"


def test_aggregated_discovery_answers_with_its_content_type(emu: KubeEmulator) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    reply = requests.get(f"{emu.url}/apis", headers={"Accept": accept}, timeout=5)
    assert reply.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    body = reply.json()
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced" and deploy["subresources"][0]["subresource"] == "status"
    core = requests.get(f"{emu.url}/api", headers={"Accept": accept}, timeout=5).json()
    assert core["items"][0]["versions"][0]["version"] == "v1"


def test_create_get_update_delete_configmap(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.generation == 1
    first_rv = int(meta.resource_version)
    created.data["a"] = "2"
    updated = v1.replace_namespaced_config_map("cfg", "default", created)
    assert int(updated.metadata.resource_version) > first_rv
    assert updated.metadata.generation == 2  # no status subresource: data is spec
    assert v1.read_namespaced_config_map("cfg", "default").data == {"a": "2"}
    # a stale resourceVersion is a 409 Conflict
    created.data["a"] = "3"
    with pytest.raises(ApiException) as stale:
        v1.replace_namespaced_config_map("cfg", "default", created)
    body = status_of(stale.value)
    assert stale.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    deleted = client.CoreV1Api(api).api_client.call_api(
        "/api/v1/namespaces/default/configmaps/cfg",
        "DELETE",
        response_type="object",
        _return_http_data_only=False,
    )
    assert deleted[1] == 200 and deleted[0]["metadata"]["name"] == "cfg"
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_config_map("cfg", "default")
    assert status_of(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "cfg" not found',
        "reason": "NotFound",
        "details": {"name": "cfg", "kind": "configmaps"},
        "code": 404,
    }


def test_already_exists_generate_name_and_bad_names(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    with pytest.raises(ApiException) as dup:
        v1.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert dup.value.status == 409 and status_of(dup.value)["reason"] == "AlreadyExists"
    generated = v1.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) > 4
    with pytest.raises(ApiException) as bad:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = status_of(bad.value)
    assert bad.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as nameless:
        v1.create_namespaced_config_map("default", {"metadata": {}})
    assert nameless.value.status == 422


def test_missing_namespace_is_404_and_namespaces_are_active(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    names = {n.metadata.name for n in v1.list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names
    with pytest.raises(ApiException) as missing:
        v1.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    body = status_of(missing.value)
    assert missing.value.status == 404 and body["message"] == 'namespaces "nope" not found'
    ns = v1.create_namespace({"metadata": {"name": "team"}})
    assert ns.status.phase == "Active"


def test_list_kind_rv_and_selectors(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "other"}})
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web"}),
        ("c", {"app": "db"}),
        ("d", {}),
    ]:
        v1.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    v1.create_namespaced_config_map("other", {"metadata": {"name": "a", "labels": {"app": "web"}}})
    raw = api.call_api(
        "/api/v1/namespaces/default/configmaps", "GET", response_type="object", _return_http_data_only=True
    )
    assert raw["kind"] == "ConfigMapList" and raw["apiVersion"] == "v1"
    assert "kind" not in raw["items"][0] and "apiVersion" not in raw["items"][0]  # as on a real server
    assert int(raw["metadata"]["resourceVersion"]) >= 6

    def names(**kw: str) -> list[str]:
        return [i.metadata.name for i in v1.list_namespaced_config_map("default", **kw).items]

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier=front") == ["a"]
    assert names(label_selector="app!=web") == ["c", "d"]
    assert names(label_selector="app in (db, web)") == ["a", "b", "c"]
    assert names(label_selector="app notin (web)") == ["c", "d"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!app") == ["d"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c", label_selector="app") == ["a", "b"]
    everywhere = v1.list_config_map_for_all_namespaces(field_selector="metadata.namespace=other")
    assert [(i.metadata.namespace, i.metadata.name) for i in everywhere.items] == [("other", "a")]
    assert len(v1.list_config_map_for_all_namespaces(label_selector="app=web").items) == 3


def test_list_pagination_with_limit_and_continue(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    for i in range(7):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = v1.list_namespaced_config_map("default", limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert seen == [f"p{i}" for i in range(7)] and pages == 3


def test_generation_ignores_metadata_and_status_for_split_kinds(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment("default", deployment("web"))
    assert created.metadata.generation == 1 and created.status is None
    created.metadata.labels = {"team": "a"}
    relabelled = apps.replace_namespaced_deployment("web", "default", created)
    assert relabelled.metadata.generation == 1
    relabelled.spec.replicas = 3
    scaled = apps.replace_namespaced_deployment("web", "default", relabelled)
    assert scaled.metadata.generation == 2
    # .status sent to the main resource is ignored; /status changes only .status
    scaled.status = client.V1DeploymentStatus(replicas=9, observed_generation=2)
    ignored = apps.replace_namespaced_deployment("web", "default", scaled)
    assert ignored.status is None
    patched = apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"replicas": 3, "observedGeneration": 2}, "spec": {"replicas": 7}}
    )
    assert patched.status.replicas == 3 and patched.spec.replicas == 3 and patched.metadata.generation == 2
    again = apps.read_namespaced_deployment("web", "default")
    again.status.replicas = 5
    again.spec.replicas = 8
    put = apps.replace_namespaced_deployment_status("web", "default", again)
    assert put.status.replicas == 5 and put.spec.replicas == 3


def test_no_op_update_keeps_resource_version(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_config_map("default", {"metadata": {"name": "same"}, "data": {"a": "1"}})
    same = v1.replace_namespaced_config_map("same", "default", created)
    assert same.metadata.resource_version == created.metadata.resource_version


def test_dry_run_stores_nothing(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    before = v1.list_namespaced_config_map("default").metadata.resource_version
    dry = v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "dry"}, "data": {"a": "1"}}, dry_run="All"
    )
    assert dry.metadata.name == "dry"
    with pytest.raises(ApiException):
        v1.read_namespaced_config_map("dry", "default")
    real = v1.create_namespaced_config_map("default", {"metadata": {"name": "dry"}, "data": {"a": "1"}})
    real.data["a"] = "2"
    v1.replace_namespaced_config_map("dry", "default", real, dry_run="All")
    v1.patch_namespaced_config_map("dry", "default", {"data": {"a": "3"}}, dry_run="All")
    v1.delete_namespaced_config_map("dry", "default", dry_run="All")
    after = v1.read_namespaced_config_map("dry", "default")
    assert after.data == {"a": "1"} and after.metadata.resource_version == real.metadata.resource_version
    assert int(before) + 1 == int(after.metadata.resource_version)


def test_delete_collection_with_selector(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    for name, app in [("x", "a"), ("y", "a"), ("z", "b")]:
        v1.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"app": app}}})
    v1.delete_collection_namespaced_config_map("default", label_selector="app=a")
    assert [i.metadata.name for i in v1.list_namespaced_config_map("default").items] == ["z"]


def test_status_errors_for_bad_requests(emu: KubeEmulator) -> None:
    url = f"{emu.url}/api/v1/namespaces/default/configmaps"
    not_json = requests.post(url, data=b"{", headers={"Content-Type": "application/json"}, timeout=5)
    assert not_json.status_code == 400 and not_json.json()["reason"] == "BadRequest"
    wrong_kind = requests.post(
        url, json={"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "q"}}, timeout=5
    )
    assert wrong_kind.status_code == 400
    not_allowed = requests.put(url, json={}, timeout=5)
    assert not_allowed.status_code == 405 and not_allowed.json()["reason"] == "MethodNotAllowed"
    requests.post(url, json={"metadata": {"name": "m"}}, timeout=5)
    bad_patch = requests.patch(f"{url}/m", data=b"{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert bad_patch.status_code == 415 and bad_patch.json()["reason"] == "UnsupportedMediaType"
    unknown = requests.get(f"{emu.url}/apis/nope.example.com/v1/things", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["kind"] == "Status"
    mismatch = requests.put(f"{url}/m", json={"metadata": {"name": "other"}}, timeout=5)
    assert mismatch.status_code == 400


def test_cluster_scoped_and_many_builtin_kinds(api: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role(
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    assert rbac.read_cluster_role("reader").rules[0].verbs == ["get"]
    client.StorageV1Api(api).create_storage_class({"metadata": {"name": "fast"}, "provisioner": "x"})
    client.CoordinationV1Api(api).create_namespaced_lease(
        "default", {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}
    )
    client.BatchV1Api(api).create_namespaced_cron_job(
        "default",
        {
            "metadata": {"name": "cj"},
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}
                        }
                    }
                },
            },
        },
    )
    client.NetworkingV1Api(api).create_namespaced_ingress(
        "default", {"metadata": {"name": "ing"}, "spec": {"rules": [{"host": "a.example.com"}]}}
    )
    client.EventsV1Api(api).create_namespaced_event(
        "default",
        {
            "metadata": {"name": "ev"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "action": "x",
            "reason": "y",
            "reportingController": "c",
            "reportingInstance": "i",
        },
    )
    client.CoreV1Api(api).create_namespaced_event(
        "default",
        {"metadata": {"name": "ev"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started"},
    )
    assert client.CoreV1Api(api).list_namespaced_event("default").items[0].reason == "Started"
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        "default", {"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1}}
    )
    client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
        "default",
        {
            "metadata": {"name": "hpa"},
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "x"}},
        },
    )
    client.CoreV1Api(api).create_namespaced_pod(
        "default", {"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    assert client.CoreV1Api(api).read_namespaced_pod("pod", "default").status is None


def test_builtin_defaulting_like_the_real_server(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    secret = v1.create_namespaced_secret(
        "default", {"metadata": {"name": "sd"}, "stringData": {"password": "hunter2"}}
    )
    assert secret.type == "Opaque" and secret.data == {"password": "aHVudGVyMg=="}
    svc = v1.create_namespaced_service(
        "default", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip.startswith("10.96.")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 80
    svc.metadata.labels = {"x": "y"}
    assert v1.replace_namespaced_service("svc", "default", svc).spec.cluster_ip == svc.spec.cluster_ip
    body = deployment("defaults")
    del body["spec"]["replicas"]
    created = client.AppsV1Api(api).create_namespaced_deployment("default", body)
    assert created.spec.replicas == 1 and created.spec.strategy.type == "RollingUpdate"
    container = created.spec.template.spec.containers[0]
    assert (
        container.image_pull_policy == "IfNotPresent"
        and container.termination_message_path == "/dev/termination-log"
    )
    assert v1.read_namespace("default").metadata.labels == {"kubernetes.io/metadata.name": "default"}


def test_scale_subresource(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("sc", replicas=2))
    scale = apps.read_namespaced_deployment_scale("sc", "default")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=sc"
    patched = apps.patch_namespaced_deployment_scale("sc", "default", {"spec": {"replicas": 4}})
    assert patched.spec.replicas == 4
    scale = apps.read_namespaced_deployment_scale("sc", "default")
    scale.spec.replicas = 1
    apps.replace_namespaced_deployment_scale("sc", "default", scale)
    after = apps.read_namespaced_deployment("sc", "default")
    assert after.spec.replicas == 1 and after.metadata.generation == 3
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("sc", "default", {"spec": {"replicas": -1}})
    assert err.value.status == 422
    resources = {r.name: r for r in apps.get_api_resources().resources}
    assert (
        resources["deployments/scale"].kind == "Scale"
        and resources["deployments/scale"].group == "autoscaling"
    )


def test_create_rejects_resource_version_and_non_string_labels(emu: KubeEmulator) -> None:
    url = f"{emu.url}/api/v1/namespaces/default/configmaps"
    with_rv = requests.post(url, json={"metadata": {"name": "rv", "resourceVersion": "5"}}, timeout=5)
    assert with_rv.status_code == 400
    assert with_rv.json()["message"] == "resourceVersion should not be set on objects to be created"
    bad_labels = requests.post(url, json={"metadata": {"name": "l", "labels": {"a": 1}}}, timeout=5)
    assert bad_labels.status_code == 400 and bad_labels.json()["reason"] == "BadRequest"


def test_tables_for_builtin_kinds(emu: KubeEmulator, api: client.ApiClient) -> None:
    client.AppsV1Api(api).create_namespaced_deployment("default", deployment("tbl", replicas=3))
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = requests.get(
        f"{emu.url}/apis/apps/v1/namespaces/default/deployments", headers=accept, timeout=5
    ).json()
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert table["rows"][0]["cells"][:4] == ["tbl", "0/3", 0, 0]
    assert table["rows"][0]["object"]["metadata"]["name"] == "tbl"
    single = requests.get(f"{emu.url}/api/v1/namespaces/default", headers=accept, timeout=5).json()
    assert single["rows"][0]["cells"][:2] == ["default", "Active"]


def test_immutable_fields_are_422_invalid(emu: KubeEmulator, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("imm"))
    changed = deployment("imm")
    changed["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    changed["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("imm", "default", changed)
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Deployment.apps "imm" is invalid: spec.selector: Invalid value: ')
    assert body["message"].endswith("field is immutable")
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True}
    )
    with pytest.raises(ApiException) as frozen:
        v1.patch_namespaced_config_map("frozen", "default", {"data": {"a": "2"}})
    assert (
        frozen.value.status == 422
        and "field is immutable when `immutable` is set" in status_of(frozen.value)["message"]
    )
    sts = {
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    apps.create_namespaced_stateful_set("default", sts)
    with pytest.raises(ApiException) as forbidden:
        apps.patch_namespaced_stateful_set("db", "default", {"spec": {"serviceName": "other"}})
    assert (
        "Forbidden: updates to statefulset spec for fields other than"
        in status_of(forbidden.value)["message"]
    )
    assert apps.patch_namespaced_stateful_set("db", "default", {"spec": {"replicas": 3}}).spec.replicas == 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": 5}}),
        ("/api/v1/namespaces/default/configmaps", {"metadata": []}),
        ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "f", "finalizers": "x"}}),
        ("/apis/apps/v1/namespaces/default/deployments", {"metadata": {"name": "d"}, "spec": []}),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": "app"}}}},
        ),
        ("/api/v1/namespaces", {"metadata": {"name": "n"}, "spec": []}),
    ],
)
def test_malformed_objects_are_400_not_500(emu: KubeEmulator, path: str, body: dict) -> None:
    reply = requests.post(f"{emu.url}{path}", json=body, timeout=5)
    assert reply.status_code == 400 and reply.json()["reason"] == "BadRequest"


def test_owner_references_need_uid(emu: KubeEmulator) -> None:
    reply = requests.post(
        f"{emu.url}/api/v1/namespaces/default/configmaps",
        timeout=5,
        json={
            "metadata": {
                "name": "o",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}],
            }
        },
    )
    assert reply.status_code == 422
    assert reply.json()["details"]["causes"][0]["field"] == "metadata.ownerReferences.uid"


def test_continue_token_older_than_history_is_410(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import config

    with KubeEmulator.in_thread(rollout=False, history_size=3) as small:
        api = config.new_client_from_config(str(small.write_kubeconfig(tmp_path / "kc")))
        v1 = client.CoreV1Api(api)
        for i in range(4):
            v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        token = v1.list_namespaced_config_map("default", limit=2).metadata._continue
        for i in range(4, 8):
            v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as err:
            v1.list_namespaced_config_map("default", limit=2, _continue=token)
        assert err.value.status == 410 and status_of(err.value)["reason"] == "Expired"
        api.close()


def test_access_reviews_always_allow(api: client.ApiClient) -> None:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "delete", "resource": "secrets", "namespace": "default"}}}
    )
    assert review.status.allowed is True
    resources = {r.name: r for r in client.AuthorizationV1Api(api).get_api_resources().resources}
    assert resources["selfsubjectaccessreviews"].verbs == ["create"]


@pytest.mark.parametrize(
    "query",
    [
        "labelSelector=app+in+(web",
        "labelSelector=a+b",
        "fieldSelector=metadata.uid%3Dx",
        "fieldSelector=name",
        "limit=many",
    ],
)
def test_bad_selectors_and_limits_are_400(emu: KubeEmulator, query: str) -> None:
    reply = requests.get(f"{emu.url}/api/v1/namespaces/default/configmaps?{query}", timeout=5)
    assert reply.status_code == 400 and reply.json()["reason"] == "BadRequest"


def _pb_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (enough to build the bodies kubectl sends)."""

    def varint(value: int) -> bytes:
        out = b""
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out += bytes([byte | 0x80])
            else:
                return out + bytes([byte])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_protobuf_bodies_of_simple_kinds_are_decoded(emu: KubeEmulator) -> None:
    meta = _pb_field(1, b"pb") + _pb_field(11, _pb_field(1, b"team") + _pb_field(2, b"a"))
    configmap = _pb_field(1, meta) + _pb_field(2, _pb_field(1, b"key") + _pb_field(2, b"value"))
    type_meta = _pb_field(1, b"v1") + _pb_field(2, b"ConfigMap")
    body = b"k8s\x00" + _pb_field(1, type_meta) + _pb_field(2, configmap)
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/json"}
    reply = requests.post(
        f"{emu.url}/api/v1/namespaces/default/configmaps", data=body, headers=headers, timeout=5
    )
    assert reply.status_code == 201
    created = reply.json()
    assert created["metadata"]["labels"] == {"team": "a"} and created["data"] == {"key": "value"}
    deployment_type = _pb_field(1, b"apps/v1") + _pb_field(2, b"Deployment")
    other = b"k8s\x00" + _pb_field(1, deployment_type) + _pb_field(2, _pb_field(1, _pb_field(1, b"d")))
    refused = requests.post(
        f"{emu.url}/apis/apps/v1/namespaces/default/deployments", data=other, headers=headers, timeout=5
    )
    assert refused.status_code == 415 and refused.json()["reason"] == "UnsupportedMediaType"
