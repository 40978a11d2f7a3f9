"""Kustomization reconcile, end to end inside the apply service: what a user sees in the cluster,
in the Kustomization's status and on the bus."""

from __future__ import annotations

import pytest

from libs.common.api import meta
from libs.common.kube import NotFound
from services.apply.app import SPEC
from services.apply.tests.support import (
    APPS,
    NS,
    Harness,
    conditions,
    configmap,
    deployment,
    eventually,
    revision,
    service_settings,
)
from tests.harness.services import running_service

pytestmark = pytest.mark.integration


async def test_build_ready_applies_objects_with_owner_labels_inventory_and_health(harness: Harness) -> None:
    h = harness
    await h.kustomization("app", wait=True, timeout="20s")
    rev = revision(1)
    await h.build_ready("app", [deployment("web"), configmap("settings")], rev)
    obj = await eventually(lambda: h.ready("app", rev))

    conds = conditions(obj)
    assert conds["Ready"]["reason"] == meta.RECONCILIATION_SUCCEEDED
    assert conds["Ready"]["message"] == f"Applied revision: {rev}"
    assert conds["Healthy"]["status"] == "True"
    assert conds["Healthy"]["message"].startswith("Health check passed in ")
    assert "Reconciling" not in conds and "Stalled" not in conds
    status = obj["status"]
    assert status["lastAttemptedRevision"] == rev
    assert status["inventory"]["entries"] == [
        {"id": f"{APPS}_settings__ConfigMap", "v": "v1"},
        {"id": f"{APPS}_web_apps_Deployment", "v": "v1"},
    ]
    assert status["history"][0]["metadata"] == {"revision": rev}
    assert status["history"][0]["lastReconciledStatus"] == meta.RECONCILIATION_SUCCEEDED

    web = await h.kube.get("apps/v1", "Deployment", "web", APPS)
    assert web is not None
    assert web["metadata"]["labels"] == {
        "kustomize.toolkit.fluxcd.io/name": "app",
        "kustomize.toolkit.fluxcd.io/namespace": NS,
    }
    assert {m["manager"] for m in web["metadata"]["managedFields"] if m["operation"] == "Apply"} == {"sluice"}

    done = await eventually(lambda: [d for d in h.done if d.object.name == "app" and d.ready])
    assert done[0].revision == rev
    assert {(c.kind, c.namespace, c.name, c.action) for c in done[0].changes} == {
        ("Deployment", APPS, "web", "created"),
        ("ConfigMap", APPS, "settings", "created"),
    }
    change_set = await eventually(
        lambda: [e for e in h.events if e.reason == meta.PROGRESSING and "created" in e.message]
    )
    assert change_set[0].message.splitlines() == [
        f"ConfigMap/{APPS}/settings created",
        f"Deployment/{APPS}/web created",
    ]
    assert change_set[0].metadata["kustomize.toolkit.fluxcd.io/revision"] == rev
    success = await eventually(lambda: [e for e in h.events if e.reason == meta.RECONCILIATION_SUCCEEDED])
    assert success[0].message == f"Applied revision: {rev}"

    # The same objects at a new revision: nothing to write, everything unchanged.
    await h.build_ready("app", [deployment("web"), configmap("settings")], revision(2))
    await eventually(lambda: h.ready("app", revision(2)))
    again = await eventually(lambda: [d for d in h.done if d.revision == revision(2)])
    assert {(c.name, c.action) for c in again[0].changes} == {("web", "unchanged"), ("settings", "unchanged")}


async def test_wait_fails_fast_on_a_failed_rollout_and_passes_completed_jobs(harness: Harness) -> None:
    h = harness
    await h.kustomization("app", wait=True, timeout="60s")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": APPS},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}
            }
        },
    }
    failing = deployment("web", annotations={"emulator.sluice.dev/rollout": "fail"})
    await h.build_ready("app", [job, failing], revision(1))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.HEALTH_CHECK_FAILED), timeout=10)
    message = conditions(obj)["Ready"]["message"]
    assert "failed early due to stalled resources: " in message
    assert f"[Deployment/{APPS}/web status: 'Failed': Progress deadline exceeded]" in message
    assert "Job" not in message


async def test_new_build_prunes_removed_objects_but_keeps_prune_disabled(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    keep = configmap("keep")
    keep["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
    await h.build_ready("app", [configmap("a"), configmap("b"), keep], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))

    await h.build_ready("app", [configmap("a")], revision(2))
    obj = await eventually(lambda: h.ready("app", revision(2)))
    assert obj["status"]["inventory"]["entries"] == [{"id": f"{APPS}_a__ConfigMap", "v": "v1"}]
    assert await h.kube.get("v1", "ConfigMap", "b", APPS) is None
    assert await h.kube.get("v1", "ConfigMap", "keep", APPS) is not None
    done = await eventually(lambda: [d for d in h.done if d.revision == revision(2)])
    assert {(c.name, c.action) for c in done[0].changes} == {("a", "unchanged"), ("b", "deleted")}


async def test_drift_is_corrected_on_the_next_reconcile(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    await h.build_ready("app", [configmap("settings", color="blue")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))

    await h.kube.patch("v1", "ConfigMap", "settings", {"data": {"color": "red"}}, namespace=APPS)
    await h.request_reconcile("app", "2026-11-25T21:00:00Z")

    async def corrected() -> bool:
        cm = await h.kube.get("v1", "ConfigMap", "settings", APPS)
        return cm is not None and cm["data"] == {"color": "blue"}

    await eventually(corrected)
    done = await eventually(lambda: [d for d in h.done if any(c.action == "configured" for c in d.changes)])
    assert [(c.name, c.action) for c in done[0].changes] == [("settings", "configured")]
    obj = await eventually(lambda: h.kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", NS))
    assert obj["status"]["lastHandledReconcileAt"] == "2026-11-25T21:00:00Z"


async def test_build_failure_after_a_good_apply_keeps_the_cluster(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    await h.build_ready("app", [configmap("settings", color="blue")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))

    await h.build_failed(
        "app", revision(2), "kustomization.yaml: accumulating resources: missing.yaml not found"
    )
    obj = await eventually(lambda: h.condition("app", "Ready", meta.BUILD_FAILED))
    ready = conditions(obj)["Ready"]
    assert ready["status"] == "False"
    assert ready["message"] == "kustomization.yaml: accumulating resources: missing.yaml not found"
    assert obj["status"]["lastAppliedRevision"] == revision(1)
    assert obj["status"]["lastAttemptedRevision"] == revision(2)
    assert obj["status"]["inventory"]["entries"] == [{"id": f"{APPS}_settings__ConfigMap", "v": "v1"}]
    cm = await h.kube.get("v1", "ConfigMap", "settings", APPS)
    assert cm is not None and cm["data"] == {"color": "blue"}
    failed = await eventually(lambda: [e for e in h.events if e.reason == meta.BUILD_FAILED])
    assert failed[0].severity == "error"

    # The fix goes back to the applied revision: nothing changes in the cluster, but the recovery
    # is still announced.
    await h.build_ready("app", [configmap("settings", color="blue")], revision(1))
    await eventually(lambda: h.condition("app", "Ready", meta.RECONCILIATION_SUCCEEDED))
    await eventually(lambda: len([e for e in h.events if e.reason == meta.RECONCILIATION_SUCCEEDED]) == 2)


async def test_depends_on_waits_for_the_dependency_and_moves_on_its_apply_done(harness: Harness) -> None:
    h = harness
    await h.kustomization("infra")
    # retryInterval is long: B can only move on A's apply.done, never on a timer.
    await h.kustomization("apps", dependsOn=[{"name": "infra"}], retryInterval="1h")
    rev = revision(7)
    await h.build_ready("apps", [configmap("app-config")], rev)
    waiting = await eventually(lambda: h.condition("apps", "Ready", meta.DEPENDENCY_NOT_READY))
    assert conditions(waiting)["Ready"]["message"] == f"dependency '{NS}/infra' is not ready"
    assert await h.kube.get("v1", "ConfigMap", "app-config", APPS) is None

    await h.build_ready("infra", [configmap("infra-config")], rev)
    await eventually(lambda: h.ready("infra", rev))
    await eventually(lambda: h.ready("apps", rev), timeout=10)
    assert await h.kube.get("v1", "ConfigMap", "app-config", APPS) is not None


async def test_health_check_timeout_names_the_held_deployment(harness: Harness) -> None:
    h = harness
    await h.kustomization(
        "app",
        timeout="1s",
        healthChecks=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": APPS}],
    )
    held = deployment("web", annotations={"emulator.sluice.dev/rollout": "hold"})
    await h.build_ready("app", [held, configmap("settings")], revision(1))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.HEALTH_CHECK_FAILED))
    conds = conditions(obj)
    assert conds["Healthy"]["status"] == "False"
    assert conds["Healthy"]["reason"] == meta.HEALTH_CHECK_FAILED
    message = conds["Ready"]["message"]
    assert message.startswith("health check failed after ")
    assert f"timeout waiting for: [Deployment/{APPS}/web status: 'InProgress'" in message
    assert "lastAppliedRevision" not in obj["status"]
    assert obj["status"]["lastAttemptedRevision"] == revision(1)
    assert len(obj["status"]["inventory"]["entries"]) == 2


async def test_crd_and_custom_resource_in_one_bundle_apply_in_stages(harness: Harness) -> None:
    h = harness
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "team"},
        "spec": {"size": 3},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    await h.kustomization("app", wait=True, timeout="20s")
    # The custom resource comes first in the bundle: staging must still apply the CRD first.
    await h.build_ready("app", [widget, namespace, crd], revision(1))
    obj = await eventually(lambda: h.ready("app", revision(1)))
    assert [e["id"] for e in obj["status"]["inventory"]["entries"]] == [
        "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition",
        "_team__Namespace",
        "team_w_example.com_Widget",
    ]
    live = await h.kube.get("example.com/v1", "Widget", "w", "team")
    assert live is not None and live["spec"] == {"size": 3}


async def test_an_object_whose_prune_failed_stays_in_the_inventory(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    protected = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-public"}}
    await h.build_ready("app", [protected, configmap("a")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))

    await h.build_ready("app", [configmap("a")], revision(2))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.PRUNE_FAILED))
    assert "Namespace/kube-public prune failed (Forbidden)" in conditions(obj)["Ready"]["message"]
    assert [e["id"] for e in obj["status"]["inventory"]["entries"]] == [
        "_kube-public__Namespace",
        f"{APPS}_a__ConfigMap",
    ]
    assert obj["status"]["lastAppliedRevision"] == revision(1)


async def test_immutable_field_change_fails_unless_forced_then_recreates(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    await h.build_ready("app", [deployment("web")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))
    before = await h.kube.get("apps/v1", "Deployment", "web", APPS)
    assert before is not None

    changed = deployment("web")
    changed["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "front"}}
    changed["spec"]["template"]["metadata"]["labels"] = {"app": "web", "tier": "front"}
    await h.build_ready("app", [changed], revision(2))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.RECONCILIATION_FAILED))
    message = conditions(obj)["Ready"]["message"]
    assert message.startswith(f"Deployment/{APPS}/web apply failed (Invalid): ")
    assert "field is immutable" in message

    changed["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/force": "Enabled"}
    await h.build_ready("app", [changed], revision(3))
    await eventually(lambda: h.ready("app", revision(3)))
    after = await h.kube.get("apps/v1", "Deployment", "web", APPS)
    assert after is not None
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "front"}
    done = await eventually(lambda: [d for d in h.done if d.revision == revision(3)])
    assert [(c.name, c.action) for c in done[0].changes] == [("web", "created")]


async def test_ssa_annotations_ignore_and_if_not_present(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    once = configmap("once", color="blue")
    once["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
    ignored = configmap("ignored")
    ignored["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}
    await h.build_ready("app", [once, ignored], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))
    assert await h.kube.get("v1", "ConfigMap", "ignored", APPS) is None
    await h.kube.patch("v1", "ConfigMap", "once", {"data": {"color": "red"}}, namespace=APPS)

    await h.build_ready("app", [once, ignored], revision(2))
    obj = await eventually(lambda: h.ready("app", revision(2)))
    cm = await h.kube.get("v1", "ConfigMap", "once", APPS)
    assert cm is not None and cm["data"] == {"color": "red"}
    done = await eventually(lambda: [d for d in h.done if d.revision == revision(2)])
    assert {(c.name, c.action) for c in done[0].changes} == {("once", "skipped"), ("ignored", "skipped")}
    assert len(obj["status"]["inventory"]["entries"]) == 2


async def test_unsupported_fields_are_reported_never_ignored(harness: Harness) -> None:
    h = harness
    await h.kustomization("remote", kubeConfig={"secretRef": {"name": "kubeconfig"}})
    obj = await eventually(lambda: h.condition("remote", "Stalled", "UnsupportedField"))
    assert "spec.kubeConfig is not supported" in conditions(obj)["Ready"]["message"]

    await h.kustomization("impersonated", serviceAccountName="deployer")
    await h.build_ready("impersonated", [configmap("x")], revision(1))
    obj = await eventually(lambda: h.ready("impersonated", revision(1)))
    message = conditions(obj)["Ready"]["message"]
    assert message.startswith(f"Applied revision: {revision(1)}; not supported, ignored: ")
    assert "spec.serviceAccountName 'deployer' is not impersonated" in message


async def test_deleting_the_kustomization_prunes_its_objects(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    await h.build_ready("app", [configmap("a"), deployment("web")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))
    await h.kube.delete("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", NS)

    async def gone() -> bool:
        ks = await h.kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", NS)
        cm = await h.kube.get("v1", "ConfigMap", "a", APPS)
        web = await h.kube.get("apps/v1", "Deployment", "web", APPS)
        return ks is None and cm is None and web is None

    await eventually(gone)


async def test_a_dependency_on_the_same_source_must_be_applied_at_the_same_revision(harness: Harness) -> None:
    h = harness
    await h.kustomization("infra")
    await h.kustomization("apps", dependsOn=[{"name": "infra"}], retryInterval="1h")
    await h.build_ready("infra", [configmap("infra-config", v="1")], revision(1))
    await eventually(lambda: h.ready("infra", revision(1)))

    await h.build_ready("apps", [configmap("app-config")], revision(2))
    waiting = await eventually(lambda: h.condition("apps", "Ready", meta.DEPENDENCY_NOT_READY))
    assert conditions(waiting)["Ready"]["message"] == f"dependency '{NS}/infra' revision is not up to date"

    await h.build_ready("infra", [configmap("infra-config", v="2")], revision(2))
    await eventually(lambda: h.ready("apps", revision(2)), timeout=10)


async def test_suspended_kustomization_applies_nothing_until_resumed(harness: Harness) -> None:
    h = harness
    await h.kustomization("app", suspend=True)
    await h.build_ready("app", [configmap("settings")], revision(1))
    # A Kustomization built after it is applied; by then the suspended one's request was handled.
    await h.kustomization("probe")
    await h.build_ready("probe", [configmap("probe")], revision(1))
    await eventually(lambda: h.ready("probe", revision(1)))
    assert await h.kube.get("v1", "ConfigMap", "settings", APPS) is None
    assert "conditions" not in (await h.get_ks("app")).get("status", {})

    await h.kube.patch(
        "kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", {"spec": {"suspend": False}}, namespace=NS
    )
    # Resuming is a new generation: the build service renders it again.
    await h.build_ready("app", [configmap("settings")], revision(1), generation=2)
    await eventually(lambda: h.ready("app", revision(1)))
    assert await h.kube.get("v1", "ConfigMap", "settings", APPS) is not None


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


async def test_health_check_exprs_decide_the_health_of_custom_resources(harness: Harness) -> None:
    h = harness
    exprs = [
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "current": "status.phase == 'Ready'",
            "failed": "status.phase == 'Broken'",
        }
    ]
    await h.kustomization("app", wait=True, timeout="30s", healthCheckExprs=exprs)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": APPS}}
    await h.build_ready("app", [WIDGET_CRD, widget], revision(1))

    async def applied() -> bool:
        try:
            return await h.kube.get("example.com/v1", "Widget", "w", APPS) is not None
        except NotFound:  # the CRD is not served yet
            return False

    await eventually(applied)
    await h.kube.patch("example.com/v1", "Widget", "w", {"status": {"phase": "Ready"}}, namespace=APPS)
    obj = await eventually(lambda: h.ready("app", revision(1)))
    assert conditions(obj)["Healthy"]["status"] == "True"
    assert conditions(obj)["Ready"]["message"] == f"Applied revision: {revision(1)}"

    await h.kube.patch("example.com/v1", "Widget", "w", {"status": {"phase": "Broken"}}, namespace=APPS)
    await h.build_ready("app", [WIDGET_CRD, widget], revision(2))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.HEALTH_CHECK_FAILED))
    assert (
        f"[Widget/{APPS}/w status: 'Failed': failed expression \"status.phase == 'Broken'\" is true]"
        in conditions(obj)["Ready"]["message"]
    )


async def test_an_invalid_cel_expression_stalls(harness: Harness) -> None:
    h = harness
    exprs = [{"apiVersion": "example.com/v1", "current": "status.phase =="}]
    await h.kustomization("app", healthCheckExprs=exprs)
    obj = await eventually(lambda: h.condition("app", "Stalled", meta.INVALID_CEL_EXPRESSION))
    assert conditions(obj)["Ready"]["message"].startswith(
        "invalid CEL expression: current expression 'status.phase ==' of example.com/v1: "
    )


async def test_ready_expr_replaces_the_built_in_dependency_check(harness: Harness) -> None:
    h = harness
    await h.kustomization("infra")
    await h.build_ready("infra", [configmap("infra-config")], revision(1))
    await eventually(lambda: h.ready("infra", revision(1)))
    ready_expr = "has(dep.metadata.annotations) && dep.metadata.annotations['team/go'] == 'yes'"
    await h.kustomization("apps", dependsOn=[{"name": "infra", "readyExpr": ready_expr}], retryInterval="1h")
    await h.build_ready("apps", [configmap("app-config")], revision(1))
    waiting = await eventually(lambda: h.condition("apps", "Ready", meta.DEPENDENCY_NOT_READY))
    assert (
        conditions(waiting)["Ready"]["message"]
        == f"dependency '{NS}/infra' is not ready according to readyExpr"
    )

    await h.kube.patch(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "infra",
        {"metadata": {"annotations": {"team/go": "yes", "reconcile.fluxcd.io/requestedAt": "now"}}},
        namespace=NS,
    )
    await eventually(lambda: h.ready("apps", revision(1)), timeout=10)


@pytest.mark.parametrize(
    ("spec", "kept"),
    [
        ({"prune": False}, True),
        ({"prune": False, "deletionPolicy": "Delete"}, False),
        ({"deletionPolicy": "Orphan"}, True),
        ({"deletionPolicy": "WaitForTermination"}, False),
    ],
    ids=["mirror-prune-off", "delete", "orphan", "wait-for-termination"],
)
async def test_deletion_policy(harness: Harness, spec: dict[str, object], kept: bool) -> None:
    h = harness
    await h.kustomization("app", **spec)
    await h.build_ready("app", [configmap("a")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))
    await h.kube.delete("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", NS)
    await eventually(lambda: _gone(h))
    assert (await h.kube.get("v1", "ConfigMap", "a", APPS) is not None) == kept


async def _gone(h: Harness) -> bool:
    return await h.kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "app", NS) is None


async def test_failed_health_checks_are_retried_after_retry_interval(harness: Harness) -> None:
    h = harness
    exprs = [{"apiVersion": "example.com/v1", "kind": "Widget", "current": "status.phase == 'Ready'"}]
    await h.kustomization("app", wait=True, timeout="1s", retryInterval="1s", healthCheckExprs=exprs)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": APPS}}
    await h.build_ready("app", [WIDGET_CRD, widget], revision(1))
    failed = await eventually(lambda: h.condition("app", "Ready", meta.HEALTH_CHECK_FAILED))
    assert f"[Widget/{APPS}/w status: 'InProgress': " in conditions(failed)["Ready"]["message"]
    assert conditions(failed)["Reconciling"]["reason"] == meta.PROGRESSING_WITH_RETRY

    # No new build, no request: the retry after retryInterval finds the Widget ready.
    await h.kube.patch("example.com/v1", "Widget", "w", {"status": {"phase": "Ready"}}, namespace=APPS)
    obj = await eventually(lambda: h.ready("app", revision(1)), timeout=10)
    assert conditions(obj)["Healthy"]["status"] == "True"


async def test_two_replicas_share_the_work_and_create_each_object_once(harness: Harness) -> None:
    h = harness
    async with running_service(SPEC, **service_settings(h.nats_url, h.kubeconfig, replica_id="second")):
        names = [f"app-{i}" for i in range(6)]
        for name in names:
            await h.kustomization(name)
        for name in names:
            await h.build_ready(name, [configmap(f"{name}-config")], revision(1))
        for name in names:
            await eventually(lambda name=name: h.ready(name, revision(1)))

        def created() -> list[str]:
            return sorted(d.object.name for d in h.done if d.changes[0].action == "created")

        # Delivery is at-least-once (a request that overtakes the build re-applies it, a no-op),
        # but the per-object lease means each object is created by exactly one run.
        await eventually(lambda: created() == names)
        assert all(d.changes[0].action in ("created", "unchanged") for d in h.done)


async def test_spec_force_recreates_objects_whose_immutable_fields_changed(harness: Harness) -> None:
    h = harness
    await h.kustomization("app", force=True)
    await h.build_ready("app", [deployment("web")], revision(1))
    await eventually(lambda: h.ready("app", revision(1)))
    changed = deployment("web")
    changed["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    changed["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}
    await h.build_ready("app", [changed], revision(2))
    await eventually(lambda: h.ready("app", revision(2)))
    live = await h.kube.get("apps/v1", "Deployment", "web", APPS)
    assert live is not None and live["spec"]["selector"]["matchLabels"] == {"app": "web", "v": "2"}


async def test_a_namespaced_object_without_namespace_is_refused_by_name(harness: Harness) -> None:
    h = harness
    await h.kustomization("app")
    orphan = configmap("loose")
    del orphan["metadata"]["namespace"]
    await h.build_ready("app", [orphan, configmap("fine")], revision(1))
    obj = await eventually(lambda: h.condition("app", "Ready", meta.RECONCILIATION_FAILED))
    assert conditions(obj)["Ready"]["message"] == (
        "ConfigMap/loose namespace not specified: set metadata.namespace in the manifests or spec.targetNamespace"
    )
    # What was applied is tracked, so a later prune can remove it.
    assert obj["status"]["inventory"]["entries"] == [{"id": f"{APPS}_fine__ConfigMap", "v": "v1"}]
