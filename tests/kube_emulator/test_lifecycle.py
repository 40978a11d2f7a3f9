"""Finalizers, deletionTimestamp, ownerReferences cascades and namespace deletion."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiException

pytestmark = pytest.mark.integration


def exists(func, *args) -> bool:  # type: ignore[no-untyped-def]
    try:
        func(*args)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def test_finalizers_delay_deletion_until_removed(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}
    )
    _, code, _ = v1.delete_namespaced_config_map_with_http_info("f", "default")
    assert code == 202
    held = v1.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp is not None and held.metadata.deletion_grace_period_seconds == 0
    with pytest.raises(ApiException) as err:
        v1.patch_namespaced_config_map(
            "f", "default", {"metadata": {"finalizers": ["example.com/hold", "new"]}}
        )
    assert err.value.status == 403
    v1.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": None}})
    assert not exists(v1.read_namespaced_config_map, "f", "default")


def owner_ref(obj) -> dict:  # type: ignore[no-untyped-def]
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj.metadata.name, "uid": obj.metadata.uid}


def test_background_cascade_deletes_dependents_whose_owners_are_gone(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    other = v1.create_namespaced_config_map("default", {"metadata": {"name": "other-owner"}})
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "child", "ownerReferences": [owner_ref(owner)]}}
    )
    v1.create_namespaced_secret(
        "default",
        {"metadata": {"name": "two-owners", "ownerReferences": [owner_ref(owner), owner_ref(other)]}},
    )
    grandchild_owner = v1.read_namespaced_config_map("child", "default")
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "grandchild", "ownerReferences": [owner_ref(grandchild_owner)]}}
    )
    v1.delete_namespaced_config_map("owner", "default")
    assert not exists(v1.read_namespaced_config_map, "child", "default")
    assert not exists(v1.read_namespaced_config_map, "grandchild", "default")
    assert exists(v1.read_namespaced_secret, "two-owners", "default")


def test_orphan_policy_strips_owner_references(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "o"}})
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "kept", "ownerReferences": [owner_ref(owner)]}}
    )
    v1.delete_namespaced_config_map("o", "default", propagation_policy="Orphan")
    kept = v1.read_namespaced_config_map("kept", "default")
    assert kept.metadata.owner_references is None


def test_foreground_deletion_waits_for_dependents(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "fg"}})
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "fg-child", "ownerReferences": [owner_ref(owner)]}}
    )
    v1.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "fg-held",
                "ownerReferences": [owner_ref(owner)],
                "finalizers": ["example.com/slow"],
            }
        },
    )
    _, code, _ = v1.delete_namespaced_config_map_with_http_info(
        "fg", "default", propagation_policy="Foreground"
    )
    assert code == 202
    assert not exists(v1.read_namespaced_config_map, "fg-child", "default")
    waiting = v1.read_namespaced_config_map("fg", "default")
    assert waiting.metadata.finalizers == ["foregroundDeletion"] and waiting.metadata.deletion_timestamp
    v1.patch_namespaced_config_map("fg-held", "default", {"metadata": {"finalizers": None}})
    assert not exists(v1.read_namespaced_config_map, "fg-held", "default")
    assert not exists(v1.read_namespaced_config_map, "fg", "default")


def test_foreground_without_dependents_deletes_at_once(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "alone"}})
    _, code, _ = v1.delete_namespaced_config_map_with_http_info(
        "alone", "default", propagation_policy="Foreground"
    )
    assert code == 200 and not exists(v1.read_namespaced_config_map, "alone", "default")


def test_delete_preconditions(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "pre"}})
    with pytest.raises(ApiException) as err:
        v1.delete_namespaced_config_map(
            "pre", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="wrong"))
        )
    assert err.value.status == 409


def test_deleting_namespace_deletes_contents(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "doomed"}})
    v1.create_namespaced_config_map("doomed", {"metadata": {"name": "a"}})
    v1.create_namespaced_secret("doomed", {"metadata": {"name": "s", "finalizers": ["example.com/x"]}})
    client.AppsV1Api(api).create_namespaced_deployment(
        "doomed",
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    v1.delete_namespace("doomed")
    assert not exists(v1.read_namespaced_config_map, "a", "doomed")
    assert v1.read_namespace("doomed").status.phase == "Terminating"  # the finalized secret holds it
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403
    v1.patch_namespaced_secret("s", "doomed", {"metadata": {"finalizers": None}})
    assert not exists(v1.read_namespace, "doomed")


def test_system_namespaces_cannot_be_deleted(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).delete_namespace("default")
    assert err.value.status == 403
