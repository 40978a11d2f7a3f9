"""RBAC in the emulator (opt-in `rbac=True`): bearer-token authentication, the TokenRequest API and
authorization from the stored Roles/ClusterRoles and bindings, over real HTTP with the official
client — the same answers (401, 403 with the real message, access reviews) a real API server gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from libs.kube_emulator import KubeEmulator

from .conftest import deployment

NS = "team"
SA = "robot"
USER = f"system:serviceaccount:{NS}:{SA}"


@pytest.fixture
def rbac_emu() -> Iterator[KubeEmulator]:
    with KubeEmulator.in_thread(rollout=False, rbac=True, bookmark_interval=0.2) as running:
        yield running


@pytest.fixture
def admin(rbac_emu: KubeEmulator, tmp_path: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(rbac_emu.write_kubeconfig(tmp_path / "admin")))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
    client.CoreV1Api(api).create_namespaced_service_account(NS, {"metadata": {"name": SA}})
    yield api
    api.close()


@pytest.fixture
def robot(rbac_emu: KubeEmulator, admin: client.ApiClient, tmp_path: Path) -> Iterator[client.ApiClient]:
    """The ServiceAccount `team/robot`, authenticated with a token from the TokenRequest API."""
    kubeconfig = rbac_emu.write_kubeconfig(tmp_path / "robot", service_account=(NS, SA))
    api = config.new_client_from_config(str(kubeconfig))
    yield api
    api.close()


def rbac(api: client.ApiClient) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(api)


def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": rules}


def binding(name: str, kind: str, role_name: str, subject: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
        "subjects": [subject or {"kind": "ServiceAccount", "name": SA, "namespace": NS}],
    }


def refused(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a call that must be refused with 403; return the Status body."""
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 403, caught.value.body
    status: dict[str, Any] = json.loads(caught.value.body)
    assert status["reason"] == "Forbidden"
    return status


def test_requests_without_a_known_token_are_401(rbac_emu: KubeEmulator, admin: client.ApiClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = requests.get(f"{rbac_emu.url}/api/v1/namespaces", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["reason"] == "Unauthorized"
    assert requests.get(f"{rbac_emu.url}/version", timeout=5).status_code == 401


def test_rbac_is_off_by_default(tmp_path: Path) -> None:
    with KubeEmulator.in_thread(rollout=False) as plain:
        answer = requests.get(f"{plain.url}/api/v1/namespaces", timeout=5)
        assert answer.status_code == 200
        assert plain.denials == []


def test_token_request_needs_the_service_account_and_names_it(
    rbac_emu: KubeEmulator, admin: client.ApiClient, robot: client.ApiClient
) -> None:
    core = client.CoreV1Api(admin)
    answer = core.create_namespaced_service_account_token(SA, NS, {"spec": {"audiences": ["x"]}})
    assert answer.status.token
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_service_account_token("nobody", NS, {"spec": {}})
    assert missing.value.status == 404
    # Who the token is: a SelfSubjectReview, as `kubectl auth whoami` asks
    whoami = client.AuthenticationV1Api(robot).create_self_subject_review({})
    assert whoami.status.user_info.username == USER
    assert set(whoami.status.user_info.groups) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{NS}",
        "system:authenticated",
    }
    # Discovery needs no grant
    assert client.VersionApi(robot).get_code().git_version == "v1.32.0"
    assert client.CoreApi(robot).get_api_versions().versions == ["v1"]


def test_no_grant_means_403_with_the_real_message(rbac_emu: KubeEmulator, robot: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(robot), client.AppsV1Api(robot)
    status = refused(core.list_namespaced_secret, NS)
    assert status["message"] == (
        f'secrets is forbidden: User "{USER}" cannot list resource "secrets" in API group "" '
        f'in the namespace "{NS}"'
    )
    status = refused(apps.read_namespaced_deployment, "web", NS)
    assert status["message"] == (
        f'deployments.apps "web" is forbidden: User "{USER}" cannot get resource "deployments" '
        f'in API group "apps" in the namespace "{NS}"'
    )
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    status = refused(core.list_namespace)
    assert status["message"].endswith(
        'cannot list resource "namespaces" in API group "" at the cluster scope'
    )
    assert [d.attributes.verb for d in rbac_emu.denials] == ["list", "get", "list"]
    assert {d.user for d in rbac_emu.denials} == {USER}


def test_a_role_grants_verbs_in_its_namespace_only(admin: client.ApiClient, robot: client.ApiClient) -> None:
    rbac(admin).create_namespaced_role(
        NS, role("reader", [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}])
    )
    rbac(admin).create_namespaced_role_binding(NS, binding("reader", "Role", "reader"))
    client.AppsV1Api(admin).create_namespaced_deployment(NS, deployment("web"))
    client.AppsV1Api(admin).create_namespaced_deployment("default", deployment("web"))
    apps = client.AppsV1Api(robot)
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]
    refused(apps.read_namespaced_deployment, "web", "default")  # another namespace
    refused(apps.list_deployment_for_all_namespaces)  # all namespaces is the cluster scope
    refused(apps.create_namespaced_deployment, NS, deployment("other"))  # another verb
    refused(apps.patch_namespaced_deployment, "web", NS, {"spec": {"replicas": 2}})
    refused(client.CoreV1Api(robot).list_namespaced_config_map, NS)  # another resource


def test_status_subresource_and_resource_names(admin: client.ApiClient, robot: client.ApiClient) -> None:
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["mine"],
            "verbs": ["get", "update"],
        },
    ]
    rbac(admin).create_namespaced_role(NS, role("narrow", rules))
    rbac(admin).create_namespaced_role_binding(NS, binding("narrow", "Role", "narrow"))
    client.AppsV1Api(admin).create_namespaced_deployment(NS, deployment("web"))
    core = client.CoreV1Api(admin)
    for name in ("mine", "theirs"):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {"a": "1"}})
    apps = client.AppsV1Api(robot)
    apps.patch_namespaced_deployment_status("web", NS, {"status": {"observedGeneration": 1}})
    status = refused(apps.patch_namespaced_deployment, "web", NS, {"spec": {"replicas": 3}})
    assert 'cannot patch resource "deployments"' in status["message"]
    status = refused(apps.read_namespaced_deployment_status, "web", NS)
    assert 'cannot get resource "deployments/status" in API group "apps"' in status["message"]
    robot_core = client.CoreV1Api(robot)
    assert robot_core.read_namespaced_config_map("mine", NS).data == {"a": "1"}
    refused(robot_core.read_namespaced_config_map, "theirs", NS)
    refused(robot_core.list_namespaced_config_map, NS)  # a list names no object


def test_cluster_role_by_cluster_binding_and_by_role_binding(
    admin: client.ApiClient, robot: client.ApiClient
) -> None:
    rbac(admin).create_cluster_role(
        role("cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])
    )
    core = client.CoreV1Api(robot)
    # A RoleBinding to a ClusterRole grants it within the binding's namespace only
    rbac(admin).create_namespaced_role_binding(NS, binding("cm-reader", "ClusterRole", "cm-reader"))
    core.list_namespaced_config_map(NS)
    refused(core.list_namespaced_config_map, "default")
    refused(core.list_config_map_for_all_namespaces)
    # A ClusterRoleBinding grants it everywhere, cluster scope included
    rbac(admin).create_cluster_role_binding(binding("cm-reader", "ClusterRole", "cm-reader"))
    core.list_namespaced_config_map("default")
    core.list_config_map_for_all_namespaces()


def test_group_and_user_subjects(admin: client.ApiClient, robot: client.ApiClient) -> None:
    rbac(admin).create_cluster_role(
        role("ns-reader", [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}])
    )
    group = {"kind": "Group", "name": f"system:serviceaccounts:{NS}", "apiGroup": "rbac.authorization.k8s.io"}
    rbac(admin).create_cluster_role_binding(binding("ns-reader", "ClusterRole", "ns-reader", group))
    assert client.CoreV1Api(robot).read_namespace(NS).metadata.name == NS
    rbac(admin).create_cluster_role(
        role("cm-lister", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]}])
    )
    user = {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}
    rbac(admin).create_cluster_role_binding(binding("cm-lister", "ClusterRole", "cm-lister", user))
    client.AppsV1Api(robot).list_stateful_set_for_all_namespaces()


def test_deleting_a_binding_or_the_service_account_revokes(
    rbac_emu: KubeEmulator, admin: client.ApiClient, robot: client.ApiClient
) -> None:
    rbac(admin).create_namespaced_role(
        NS, role("cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}])
    )
    rbac(admin).create_namespaced_role_binding(NS, binding("cm", "Role", "cm"))
    core = client.CoreV1Api(robot)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "x"}})
    rbac(admin).delete_namespaced_role_binding("cm", NS)
    refused(core.read_namespaced_config_map, "x", NS)
    rbac(admin).create_namespaced_role_binding(NS, binding("cm", "Role", "cm"))
    core.read_namespaced_config_map("x", NS)
    client.CoreV1Api(admin).delete_namespaced_service_account(SA, NS)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("x", NS)
    assert gone.value.status == 401
    # a new ServiceAccount of the same name does not revive the old tokens
    client.CoreV1Api(admin).create_namespaced_service_account(NS, {"metadata": {"name": SA}})
    with pytest.raises(ApiException) as still:
        core.read_namespaced_config_map("x", NS)
    assert still.value.status == 401


def test_watch_is_authorized_when_it_starts(admin: client.ApiClient, robot: client.ApiClient) -> None:
    core = client.CoreV1Api(robot)
    rbac(admin).create_namespaced_role(
        NS, role("cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])
    )
    rbac(admin).create_namespaced_role_binding(NS, binding("cm", "Role", "cm"))
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    status = refused(
        core.list_namespaced_config_map, NS, watch=True, resource_version=rv, _preload_content=False
    )
    assert 'cannot watch resource "configmaps"' in status["message"]
    rbac(admin).replace_namespaced_role(
        "cm", NS, role("cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}])
    )
    client.CoreV1Api(admin).create_namespaced_config_map(NS, {"metadata": {"name": "seen"}})
    events = watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=5)
    first = next(events)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "seen")


def ssar(api: client.ApiClient, **attributes: Any) -> Any:
    body = {"spec": {"resourceAttributes": attributes}}
    return client.AuthorizationV1Api(api).create_self_subject_access_review(body).status


def test_access_reviews_answer_from_the_same_rules(admin: client.ApiClient, robot: client.ApiClient) -> None:
    rbac(admin).create_namespaced_role(
        NS, role("cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    )
    rbac(admin).create_namespaced_role_binding(NS, binding("cm", "Role", "cm"))
    allowed = ssar(robot, verb="list", resource="configmaps", namespace=NS)
    assert allowed.allowed is True
    assert 'RoleBinding "cm/team" of Role "cm"' in allowed.reason
    assert ssar(robot, verb="create", resource="configmaps", namespace=NS).allowed is False
    assert ssar(robot, verb="list", resource="configmaps", namespace="default").allowed is False
    assert ssar(admin, verb="delete", group="apps", resource="deployments", namespace="x").allowed is True
    # SubjectAccessReview: the admin asks about someone else
    sar = client.AuthorizationV1Api(admin).create_subject_access_review(
        {
            "spec": {
                "user": USER,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {"verb": "get", "resource": "configmaps", "namespace": NS},
            }
        }
    )
    assert sar.status.allowed is True
    rules = client.AuthorizationV1Api(robot).create_self_subject_rules_review({"spec": {"namespace": NS}})
    assert {"get", "list"} <= {
        v for r in rules.status.resource_rules if "configmaps" in r.resources for v in r.verbs
    }
    assert any("/version" in r.non_resource_ur_ls for r in rules.status.non_resource_rules)


def test_the_bootstrap_roles_exist(admin: client.ApiClient) -> None:
    names = {r.metadata.name for r in rbac(admin).list_cluster_role().items}
    assert {"cluster-admin", "system:discovery", "system:basic-user"} <= names


def test_tls_serves_the_same_api_to_the_python_client(tmp_path: Path) -> None:
    with KubeEmulator.in_thread(rollout=False, rbac=True, tls=True) as secure:
        assert secure.url.startswith("https://")
        api = config.new_client_from_config(str(secure.write_kubeconfig(tmp_path / "admin")))
        try:
            assert client.VersionApi(api).get_code().git_version == "v1.32.0"
        finally:
            api.close()


@pytest.mark.integration
@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH (optional check)")
def test_kubectl_auth_can_i_and_forbidden(tmp_path: Path) -> None:
    """kubectl sends its token only over TLS, so this runs the emulator with tls=True."""
    with KubeEmulator.in_thread(rollout=False, rbac=True, tls=True) as secure:
        api = config.new_client_from_config(str(secure.write_kubeconfig(tmp_path / "admin")))
        try:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            client.CoreV1Api(api).create_namespaced_service_account(NS, {"metadata": {"name": SA}})
            rbac(api).create_namespaced_role(
                NS, role("cm", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
            )
            rbac(api).create_namespaced_role_binding(NS, binding("cm", "Role", "cm"))
        finally:
            api.close()
        kubeconfig = secure.write_kubeconfig(tmp_path / "robot", service_account=(NS, SA))
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(tmp_path))

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["kubectl", *args, "-n", NS], capture_output=True, text=True, env=env, timeout=30, check=False
            )

        assert kubectl("auth", "can-i", "get", "configmaps").stdout.strip() == "yes"
        assert kubectl("auth", "can-i", "delete", "configmaps").stdout.strip() == "no"
        assert kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == USER
        denied = kubectl("get", "secrets")
        assert denied.returncode != 0
        assert f'User "{USER}" cannot list resource "secrets" in API group "" in the namespace "{NS}"' in (
            denied.stderr
        )


@pytest.mark.integration
def test_the_process_enforces_rbac_when_asked(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    argv = ["--no-rollout", "--authorization", "rbac", "--kubeconfig", str(kubeconfig)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "libs.kube_emulator", *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert requests.get(f"{url}/api/v1/namespaces", timeout=5).status_code == 401
        api = config.new_client_from_config(str(kubeconfig))
        try:
            names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
            assert "default" in names
        finally:
            api.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
