"""deploy/k8s builds with libs/kustomize, holds together, and keeps the layout contract the CLI and
docs rely on (names, labels, security settings, NATS wiring)."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from libs.common.api.crd import crd_documents
from tests.deploy.manifests import (
    COMPONENTS,
    DEFAULT_COMPONENTS,
    DEPLOY,
    IMAGE_COMPONENTS,
    NAMESPACE,
    OVERLAYS,
    STANDALONE,
    built,
    containers,
    find,
    pod_spec,
    reference_problems,
    workloads,
)

pytestmark = pytest.mark.unit

PART_OF = {"app.kubernetes.io/part-of": "sluice", "app.kubernetes.io/instance": NAMESPACE}


@pytest.mark.parametrize("directory", STANDALONE)
def test_every_directory_builds_on_its_own(directory: str) -> None:
    objects = built(directory)
    assert objects, f"deploy/k8s/{directory} builds to nothing"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name")


def test_the_root_installs_exactly_the_full_overlay() -> None:
    assert built("") == built("overlays/full")


def test_minimal_has_the_default_components_and_full_adds_the_image_services() -> None:
    minimal = {d["metadata"]["name"] for d in find(built("overlays/minimal"), "Deployment")}
    full = {d["metadata"]["name"] for d in find(built("overlays/full"), "Deployment")}
    assert minimal == {f"sluice-{c}" for c in DEFAULT_COMPONENTS}
    assert full == {f"sluice-{c}" for c in COMPONENTS}
    assert not [o for o in built("overlays/minimal") if "image-" in o["metadata"]["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_install_crds_namespace_nats_and_storage(overlay: str) -> None:
    objects = built(f"overlays/{overlay}")
    crds = {c["metadata"]["name"] for c in find(objects, "CustomResourceDefinition")}
    assert crds == {c["metadata"]["name"] for c in crd_documents()}
    assert find(objects, "Namespace", NAMESPACE)
    assert find(objects, "StatefulSet", "sluice-nats") and find(objects, "Service", "sluice-nats")
    assert find(objects, "ConfigMap", "sluice-storage")
    namespaced = [o for o in objects if o["kind"] not in CLUSTER_SCOPED]
    assert {o["metadata"].get("namespace") for o in namespaced} == {NAMESPACE}


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve_within_each_overlay(overlay: str) -> None:
    assert reference_problems(built(f"overlays/{overlay}")) == []


def test_the_reference_checker_finds_what_is_broken() -> None:
    """The checker itself: each kind of breakage it looks for is reported."""
    objects = built("overlays/full")
    broken = copy.deepcopy(objects)
    source = find(broken, "Deployment", "sluice-source")[0]
    source["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "other"
    spec = pod_spec(source)
    spec["serviceAccountName"] = "missing-sa"
    spec["containers"][0]["readinessProbe"]["httpGet"]["port"] = "nope"
    spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] = "missing-secret"
    find(broken, "ClusterRoleBinding", "sluice-build")[0]["roleRef"]["name"] = "missing-role"
    broken = [o for o in broken if o["kind"] != "PersistentVolumeClaim"]
    found = "\n".join(reference_problems(broken))
    for expected in (
        "does not match the pod template labels",
        "serviceAccountName missing-sa",
        "uses port nope",
        "reads Secret missing-secret",
        "roleRef ClusterRole/missing-role",
        "uses PVC sluice-artifacts",
        "Service/sluice-source: selector",
    ):
        assert expected in found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_carries_the_sluice_labels(overlay: str) -> None:
    for obj in built(f"overlays/{overlay}"):
        labels = obj["metadata"].get("labels") or {}
        assert PART_OF.items() <= labels.items(), f"{obj['kind']}/{obj['metadata']['name']}: {labels}"
        if obj["kind"] == "CustomResourceDefinition":
            assert labels["app.kubernetes.io/component"] == "crds"


def test_service_objects_name_their_component() -> None:
    objects = built("overlays/full")
    for component in COMPONENTS:
        objs = built(f"services/{component}")
        for obj in objs:
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == component
            assert labels["app.kubernetes.io/name"] == f"sluice-{component}"
        deployment = find(objects, "Deployment", f"sluice-{component}")[0]
        assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "0.1.0"
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/component"] == component
        assert pod_labels["app.kubernetes.io/version"] == "0.1.0"
        assert containers(deployment)[0]["image"] == f"ghcr.io/sluice-dev/sluice-{component}:0.1.0"
    for obj in built("nats"):
        assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "nats"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_non_root_on_a_read_only_root_filesystem(overlay: str) -> None:
    for workload in workloads(built(f"overlays/{overlay}")):
        pod = pod_spec(workload).get("securityContext") or {}
        assert pod.get("runAsNonRoot") is True
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}
        for container in containers(workload):
            sc = container.get("securityContext") or {}
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")) is True, where
            assert (sc.get("runAsUser") or pod.get("runAsUser")) == 65532, where
            requests = container["resources"]["requests"]
            assert requests.get("cpu") and requests.get("memory"), where
            assert "cpu" not in container["resources"].get("limits", {}), f"{where}: no CPU limit, as Flux"
            assert container["resources"]["limits"].get("memory"), where


def test_services_expose_probes_metrics_and_their_nats_user() -> None:
    objects = built("overlays/full")
    for component in COMPONENTS:
        deployment = find(objects, "Deployment", f"sluice-{component}")[0]
        template = deployment["spec"]["template"]
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics",
        }
        container = containers(deployment)[0]
        assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        settings = find(objects, "ConfigMap", f"sluice-{component}-settings")[0]["data"]
        assert settings["SLUICE_NATS_URL"] == "nats://sluice-nats.flux-system.svc:4222"
        assert settings["SLUICE_NATS_USER"] == component
        assert settings["SLUICE_HTTP_ADDR"] == "0.0.0.0:8080"
        password = next(e for e in container["env"] if e["name"] == "SLUICE_NATS_PASSWORD")
        assert password["valueFrom"]["secretKeyRef"] == {"name": "sluice-nats-users", "key": component}


def test_settings_configmaps_hold_only_variables_the_service_reads() -> None:
    """A typo in a SLUICE_ variable would be ignored silently by the service (only warned about)."""
    import importlib

    objects = built("overlays/full")
    for component in COMPONENTS:
        settings_cls = importlib.import_module(f"services.{component.replace('-', '_')}.app").SPEC.settings
        data = dict(find(objects, "ConfigMap", f"sluice-{component}-settings")[0]["data"])
        deployment = find(objects, "Deployment", f"sluice-{component}")[0]
        refs = {
            r["configMapRef"]["name"] for r in containers(deployment)[0]["envFrom"] if "configMapRef" in r
        }
        if "sluice-storage" in refs:
            data |= find(objects, "ConfigMap", "sluice-storage")[0]["data"]
        assert settings_cls.unknown_env(data) == []
        settings_cls.from_env(data)  # every value parses


def test_services_with_http_endpoints_have_their_service() -> None:
    objects = built("overlays/full")
    for name, component, port in (
        ("sluice-source", "source", "artifacts"),
        ("sluice-build", "build", "bundles"),
        ("sluice-receiver", "notify", "webhooks"),
    ):
        service = find(objects, "Service", name)[0]
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == f"sluice-{component}"
        assert service["spec"]["ports"][0]["targetPort"] == port


def test_the_store_users_mount_the_pvc_or_an_empty_dir_with_s3() -> None:
    for overlay, expected in (("full", "persistentVolumeClaim"), ("s3", "emptyDir")):
        objects = built(f"overlays/{overlay}")
        for component in ("source", "build", "image-scan"):
            volumes = {
                v["name"]: v
                for v in pod_spec(find(objects, "Deployment", f"sluice-{component}")[0])["volumes"]
            }
            assert set(volumes["artifacts"]) == {"name", expected}
        store = find(objects, "ConfigMap", "sluice-storage")[0]["data"]["SLUICE_ARTIFACT_STORE"]
        assert store.startswith("s3://" if overlay == "s3" else "file:///var/lib/sluice/artifacts")


def test_secrets_with_placeholders_are_never_overwritten_by_a_self_managing_install() -> None:
    objects = built("overlays/s3")
    users = find(objects, "Secret", "sluice-nats-users")[0]
    assert set(users["stringData"]) == {*COMPONENTS, "cli"}
    for name in ("sluice-nats-users", "sluice-s3"):
        secret = find(objects, "Secret", name)[0]
        assert secret["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/ssa"] == "IfNotPresent"


def test_nats_mounts_its_generated_config_and_reads_every_password() -> None:
    objects = built("nats")
    statefulset = find(objects, "StatefulSet", "sluice-nats")[0]
    config = next(v for v in pod_spec(statefulset)["volumes"] if v["name"] == "config")
    configmap = find(objects, "ConfigMap", config["configMap"]["name"])[0]
    assert configmap["metadata"]["name"].startswith("sluice-nats-config-")
    assert configmap["data"]["nats.conf"] == (DEPLOY / "nats" / "nats.conf").read_text()
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in containers(statefulset)[0]["env"]}
    assert sorted(env.values()) == sorted([*COMPONENTS, "cli"])
    for variable in env:
        assert f"${variable}" in configmap["data"]["nats.conf"]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    service = find(objects, "Service", "sluice-nats")[0]
    assert {p["port"] for p in service["spec"]["ports"]} == {4222, 8222}


def test_apply_alone_is_bound_to_cluster_admin() -> None:
    """Least privilege: only apply (which applies whatever Kustomizations hold) gets cluster-admin;
    no other service can write Secrets, or anything outside the Flux kinds and Events."""
    objects = built("overlays/full")
    for binding in find(objects, "ClusterRoleBinding"):
        component = binding["metadata"]["labels"]["app.kubernetes.io/component"]
        assert (binding["roleRef"]["name"] == "cluster-admin") == (component == "apply")
    for role in find(objects, "ClusterRole"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"], role["metadata"]["name"]
            if rule["apiGroups"] == [""]:
                writes = set(rule["verbs"]) - {"get", "list", "watch"}
                assert not writes or rule["resources"] == ["events"], role["metadata"]["name"]


def test_the_autoscaling_components_scale_existing_deployments(tmp_path) -> None:
    for overlay, component, expected in (
        ("full", "autoscaling", COMPONENTS),
        ("minimal", "autoscaling/minimal", DEFAULT_COMPONENTS),
    ):
        user = tmp_path / overlay
        shutil.copytree(DEPLOY, user / "deploy" / "k8s")
        mine = user / "deploy" / "k8s" / "mine"
        mine.mkdir()
        (mine / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {"resources": [f"../overlays/{overlay}"], "components": [f"../components/{component}"]}
            )
        )
        from libs.kustomize import build

        objects = build(mine).resources
        hpas = find(objects, "HorizontalPodAutoscaler")
        assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {f"sluice-{c}" for c in expected}
        assert reference_problems(objects) == []
        assert not set(IMAGE_COMPONENTS) & set(expected) or overlay == "full"


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (optional cross-check)")
@pytest.mark.parametrize("directory", STANDALONE)
def test_libs_kustomize_matches_kubectl_kustomize_byte_for_byte(directory: str) -> None:
    from libs.kustomize import build

    expected = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert build(DEPLOY / directory).to_yaml() == expected


def test_the_documented_password_overlay_replaces_the_placeholders(tmp_path) -> None:
    """docs/install.md's recipe: a secretGenerator with behavior: replace puts real passwords in
    sluice-nats-users and keeps its labels and the ssa: IfNotPresent annotation."""
    from libs.kustomize import build

    shutil.copytree(DEPLOY, tmp_path / "deploy" / "k8s")
    mine = tmp_path / "my-sluice"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../deploy/k8s"],
                "secretGenerator": [
                    {
                        "name": "sluice-nats-users",
                        "namespace": NAMESPACE,
                        "behavior": "replace",
                        "envs": ["nats-users.env"],
                        "options": {"disableNameSuffixHash": True},
                    }
                ],
            }
        )
    )
    users = [*COMPONENTS, "cli"]
    (mine / "nats-users.env").write_text("".join(f"{u}=real-{u}\n" for u in users))
    secret = find(build(mine).resources, "Secret", "sluice-nats-users")[0]
    assert "stringData" not in secret
    assert sorted(secret["data"]) == sorted(users)
    assert secret["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/ssa"] == "IfNotPresent"
    assert secret["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sluice"


def test_install_doc_names_real_metrics_paths_and_services() -> None:
    """docs/install.md stays true: the metrics it lists are registered by the code, the
    deploy/k8s paths and Services it names exist."""
    import re

    from tests.deploy.manifests import ROOT

    doc = (ROOT / "docs" / "install.md").read_text()
    code = "\n".join(p.read_text() for d in ("libs", "services") for p in (ROOT / d).rglob("*.py"))
    for metric in set(re.findall(r"`(sluice_[a-z_]+)", doc)):
        assert f'"{metric}"' in code, f"{metric} is not a metric the code registers"
    for path in set(re.findall(r"(deploy/k8s/[\w/.-]*\w)", doc)):
        assert (ROOT / path).exists(), path
    services = {s["metadata"]["name"] for s in find(built("overlays/full"), "Service")}
    for name in set(re.findall(r"Service `(sluice-[\w-]+)`", doc)) | set(
        re.findall(r"`(sluice-receiver)`", doc)
    ):
        assert name in services, name


# The kinds each service reconciles (writes status and finalizers of), from DESIGN.md's table and
# the services' reconcilers.
OWNED_KINDS = {
    "source": ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket"),
    "image-scan": ("ImageRepository", "ImagePolicy"),
    "image-update": ("ImageUpdateAutomation",),
    "notify": ("Receiver",),  # v1beta3 Providers and Alerts have no status and no finalizer
}


def _grants(role: dict, group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in role["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("component", sorted(OWNED_KINDS))
def test_each_controller_may_watch_and_write_the_status_of_its_kinds_only(component: str) -> None:
    names = {
        c["spec"]["names"]["kind"]: (c["spec"]["group"], c["spec"]["names"]["plural"])
        for c in crd_documents()
    }
    role = find(built(f"services/{component}"), "ClusterRole", f"sluice-{component}")[0]
    for kind in OWNED_KINDS[component]:
        group, plural = names[kind]
        assert {"get", "list", "watch", "patch"} <= _grants(role, group, plural), kind
        assert "patch" in _grants(role, group, f"{plural}/status"), kind
    assert "create" in _grants(role, "", "events")
    others = {k for c, kinds in OWNED_KINDS.items() if c != component for k in kinds}
    for kind in others:
        group, plural = names[kind]
        assert not _grants(role, group, f"{plural}/status"), f"{component} may write {kind} status"
