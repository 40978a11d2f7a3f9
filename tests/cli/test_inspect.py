"""`sluice build|diff kustomization NAME --path DIR` against the Kubernetes emulator: the build
is what libs.fluxbuild renders (with cluster variables and owner labels), the diff reports created,
drifted and deleted objects with flux's exit codes, and no Secret value is ever printed."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.cli.main import main
from libs.common import names
from libs.common.api import meta
from libs.common.kube import Kube
from libs.devservers.ports import free_port
from libs.fluxbuild import BuildSpec, render
from tests.cli.conftest import kube_run

pytestmark = pytest.mark.integration

KS_API = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
SECRET_TEXT = "s3cr3t-plaintext-value"
SUBSTITUTED_SECRET = "db-pa55word-from-cluster"
LABELS = {meta.KUSTOMIZE_NAME_LABEL: "apps", meta.KUSTOMIZE_NAMESPACE_LABEL: "flux-system"}

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:${TAG:=1.25}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello ${CLUSTER_NAME}
  dsn: "postgres://app:${DB_PASSWORD}@db/app"
"""
SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: creds
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"stringData":{{"password":"{SECRET_TEXT}"}}}}'
stringData:
  password: {SECRET_TEXT}
"""


def kustomization(**spec: Any) -> dict[str, Any]:
    """Kustomization `apps`; `spec` overrides fields (None drops one)."""
    ks = {
        "apiVersion": KS_API[0],
        "kind": KS_API[1],
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {
            "interval": "5m",
            "path": "./apps",
            "prune": True,
            "targetNamespace": "default",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            "postBuild": {
                "substitute": {"CLUSTER_NAME": "dev"},
                "substituteFrom": [
                    {"kind": "ConfigMap", "name": "vars"},
                    {"kind": "Secret", "name": "secret-vars"},
                ],
            },
            **spec,
        },
    }
    ks["spec"] = {k: v for k, v in ks["spec"].items() if v is not None}
    return ks


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """A plain directory of manifests (no kustomization.yaml), inside a Git checkout."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    directory = tmp_path / "repo" / "apps"
    directory.mkdir()
    (directory / "deployment.yaml").write_text(DEPLOYMENT)
    (directory / "configmap.yaml").write_text(CONFIGMAP)
    (directory / "secret.yaml").write_text(SECRET)
    return directory


def seed(kubeconfig: str, ks: dict[str, Any]) -> None:
    async def work(kube: Kube) -> None:
        await kube.apply(ks, field_manager="test")
        vars_cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "vars", "namespace": "flux-system"},
            "data": {"REPLICAS": "3"},
        }
        secret_vars = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "secret-vars", "namespace": "flux-system"},
            "data": {"DB_PASSWORD": base64.b64encode(SUBSTITUTED_SECRET.encode()).decode()},
        }
        await kube.apply(vars_cm, field_manager="test")
        await kube.apply(secret_vars, field_manager="test")

    kube_run(kubeconfig, work)


def expected_objects(directory: Path, ks: dict[str, Any]) -> list[dict[str, Any]]:
    """What libs.fluxbuild renders for the directory (as the build service would), labelled."""
    spec = BuildSpec.from_spec({**ks["spec"], "path": "."})
    sources = [{"REPLICAS": "3"}, {"DB_PASSWORD": SUBSTITUTED_SECRET}]
    objects = render(directory, spec, sources=sources).resources
    for obj in objects:
        obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **LABELS}
    return objects


def assert_no_secret(text: str) -> None:
    for value in (SECRET_TEXT, SUBSTITUTED_SECRET):
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- build -----------------------------------------------------------------------------------


def test_build_renders_what_the_build_service_renders_with_cluster_variables(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = kustomization()
    seed(kubeconfig, ks)

    code, out, err = run(
        capsys, "--kubeconfig", kubeconfig, "build", "kustomization", "apps", "--path", str(apps)
    )

    assert (code, err) == (0, "")
    printed = list(yaml.safe_load_all(out))
    expected = expected_objects(apps, ks)
    assert (
        [o["kind"] for o in printed] == [o["kind"] for o in expected] == ["ConfigMap", "Secret", "Deployment"]
    )
    deployment = printed[2]
    assert deployment == expected[2]
    assert deployment["spec"]["replicas"] == 3  # from the cluster ConfigMap
    assert deployment["metadata"]["namespace"] == "default"  # spec.targetNamespace
    assert printed[0]["data"]["greeting"] == "hello dev"  # inline substitute
    assert printed[0]["data"]["dsn"] == "postgres://app:***@db/app"  # a Secret variable, masked
    secret = expected[1]
    secret["stringData"] = {"password": "***"}
    secret["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "***"
    assert printed[1] == secret
    assert_no_secret(out)
    assert not (apps / "kustomization.yaml").exists()  # generated in a copy, never in the user's tree


def test_build_honours_ignore_paths_and_strict_substitution(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig, kustomization())
    (apps / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-${UNSET}\n")
    k = ["--kubeconfig", kubeconfig, "build", "ks", "apps", "--path", str(apps)]

    code, out, err = run(capsys, *k)
    assert (code, out) == (1, "")
    assert "UNSET" in err and err.startswith("✗ ")

    code, out, _ = run(capsys, *k, "--ignore-paths", "extra.yaml")
    assert code == 0
    assert "name: extra-" not in out

    code, out, _ = run(capsys, *k, "--no-strict-substitute")
    assert code == 0
    assert "name: extra-\n" in out

    repo = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "repo", "namespace": "flux-system"},
        "spec": {"url": "https://example.com/repo", "interval": "1m", "ignore": "/apps/extra.yaml\n"},
    }
    kube_run(kubeconfig, lambda kube: kube.apply(repo, field_manager="test"))
    code, out, _ = run(capsys, *k)  # the source leaves the file out of its artifact, so does build
    assert code == 0
    assert "name: extra-" not in out


def test_build_reads_outside_the_path_within_the_checkout_and_applies_spec_settings(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = apps.parent / "base"
    base.mkdir()
    (base / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"
    )
    (base / "kustomization.yaml").write_text("resources:\n- service.yaml\n")
    (apps / "kustomization.yaml").write_text("resources:\n- ../base\n- deployment.yaml\n")
    (apps / "deployment.yaml").write_text(DEPLOYMENT.replace("${TAG:=1.25}", "1.25"))
    ks = kustomization(
        namePrefix="dev-",
        images=[{"name": "nginx", "newTag": "1.27"}],
        commonMetadata={"labels": {"team": "web"}},
    )
    seed(kubeconfig, ks)

    code, out, err = run(capsys, "--kubeconfig", kubeconfig, "build", "ks", "apps", "--path", str(apps))

    assert (code, err) == (0, "")
    printed = {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(out)}
    assert sorted(printed) == ["Deployment/dev-web", "Service/dev-web"]
    deployment = printed["Deployment/dev-web"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert deployment["metadata"]["labels"] == {"team": "web", **LABELS}
    assert (apps / "kustomization.yaml").read_text() == "resources:\n- ../base\n- deployment.yaml\n"


def test_build_dry_run_needs_no_cluster(
    apps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = kustomization()
    ks["spec"]["postBuild"]["substitute"]["REPLICAS"] = "2"
    file = tmp_path / "ks.yaml"
    file.write_text(yaml.safe_dump_all([{"kind": "GitRepository", "metadata": {"name": "repo"}}, ks]))
    nowhere = str(tmp_path / "no-kubeconfig")

    code, out, err = run(
        capsys, "--kubeconfig", nowhere, "build", "ks", "apps", "--path", str(apps),
        "--kustomization-file", str(file), "--dry-run",
    )  # fmt: skip

    assert (code, err) == (0, "")
    printed = {o["kind"]: o for o in yaml.safe_load_all(out)}
    assert printed["Deployment"]["spec"]["replicas"] == 2
    # substituteFrom is skipped in dry-run: the cluster-only variable is left empty
    assert printed["ConfigMap"]["data"]["dsn"] == "postgres://app:@db/app"

    code, _, err = run(capsys, "build", "ks", "apps", "--path", str(apps), "--dry-run")
    assert code == 1
    assert "--kustomization-file" in err


def test_build_errors_say_what_is_wrong_and_what_to_do(
    kubeconfig: str, apps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--kubeconfig", kubeconfig, "build", "ks", "x", "--path", str(apps))
    assert (code, out) == (1, "")
    assert err.startswith("✗ Kustomization flux-system/x not found")
    assert "--kustomization-file" in err

    missing = tmp_path / "not-there"
    code, out, err = run(capsys, "--kubeconfig", kubeconfig, "build", "ks", "x", "--path", str(missing))
    assert (code, out) == (1, "")
    assert str(missing) in err and "does not exist" in err

    seed(kubeconfig, kustomization(postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "gone"}]}))
    code, _, err = run(capsys, "--kubeconfig", kubeconfig, "build", "ks", "apps", "--path", str(apps))
    assert code == 1
    assert "substitute from 'ConfigMap/gone' error" in err


# --- diff ------------------------------------------------------------------------------------


def apply_build(kubeconfig: str, objects: list[dict[str, Any]]) -> None:
    """Apply the build the way the apply service does (its field manager, forcing conflicts)."""

    async def work(kube: Kube) -> None:
        for obj in objects:
            await kube.apply(copy.deepcopy(obj), field_manager=names.FIELD_MANAGER, force=True)

    kube_run(kubeconfig, work)


def test_diff_reports_created_then_nothing_then_drift_and_deletions(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = kustomization()
    seed(kubeconfig, ks)
    diff = ["--kubeconfig", kubeconfig, "diff", "kustomization", "apps", "--path", str(apps)]

    code, out, err = run(capsys, *diff)
    assert code == 1
    assert out.splitlines() == [
        "► ConfigMap/default/settings created",
        "► Secret/default/creds created",
        "► Deployment/default/web created",
    ]
    assert "✗ identified at least one change, exiting with non-zero exit code" in err

    apply_build(kubeconfig, expected_objects(apps, ks))
    code, out, err = run(capsys, *diff, "--no-progress-bar")
    assert (code, out, err) == (0, "", "")

    async def drift(kube: Kube) -> None:
        await kube.patch("apps/v1", "Deployment", "web", {"spec": {"replicas": 5}}, namespace="default",
                         field_manager="kubectl-edit")  # fmt: skip
        tampered = {"data": {"dsn": "postgres://app:tampered@db/app"}}
        await kube.patch(
            "v1", "ConfigMap", "settings", tampered, namespace="default", field_manager="kubectl-edit"
        )
        other = base64.b64encode(b"changed-by-hand-value").decode()
        await kube.patch("v1", "Secret", "creds", {"data": {"password": other}}, namespace="default",
                         field_manager="kubectl-edit")  # fmt: skip
        inventory = {
            "entries": [
                {"id": "default_web_apps_Deployment", "v": "v1"},
                {"id": "default_old_apps_Deployment", "v": "v1"},
            ]
        }
        await kube.patch_status(
            *KS_API, "apps", "flux-system", {"inventory": inventory}, field_manager="test"
        )

    kube_run(kubeconfig, drift)
    code, out, err = run(capsys, *diff, "--no-progress-bar")
    assert code == 1
    assert out.splitlines() == [
        "► ConfigMap/default/settings drifted",
        "data.dsn",
        "  - postgres://app:tampered@db/app",
        "  + postgres://app:***@db/app",  # the value from the substituteFrom Secret stays hidden
        "► Secret/default/creds drifted",
        "data.password",
        "  - *** (before)",
        "  + *** (after)",
        "► Deployment/default/web drifted",
        "spec.replicas",
        "  - 5",
        "  + 3",
        "► Deployment/default/old deleted",
    ]
    assert_no_secret(out + err)
    assert "changed-by-hand-value" not in out


def test_diff_without_prune_reports_no_deletions_and_skips_objects_the_apply_service_leaves_alone(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = kustomization(prune=False)
    seed(kubeconfig, ks)
    apply_build(kubeconfig, expected_objects(apps, ks))
    inventory = {"entries": [{"id": "default_old_apps_Deployment", "v": "v1"}]}
    kube_run(
        kubeconfig,
        lambda kube: kube.patch_status(
            *KS_API, "apps", "flux-system", {"inventory": inventory}, field_manager="t"
        ),
    )
    text = (apps / "configmap.yaml").read_text()
    annotated = text.replace("  name: settings\n", "  name: settings\n  annotations:\n    "
                             f"{meta.KUSTOMIZE_RECONCILE_ANNOTATION}: disabled\n")  # fmt: skip
    (apps / "configmap.yaml").write_text(annotated.replace("hello", "bye"))
    once = DEPLOYMENT.replace(
        "  name: web\n", f"  name: web\n  annotations:\n    {meta.KUSTOMIZE_SSA_ANNOTATION}: IfNotPresent\n"
    )
    (apps / "deployment.yaml").write_text(once.replace("${REPLICAS}", "7"))  # created once, never updated

    code, out, err = run(capsys, "--kubeconfig", kubeconfig, "diff", "ks", "apps", "--path", str(apps))

    assert (code, out) == (0, "")
    assert "◎ running dry-run" in err


def test_diff_of_a_missing_kustomization_fails_with_exit_2(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--kubeconfig", kubeconfig, "diff", "ks", "x", "--path", str(apps))
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith("✗ Kustomization flux-system/x not found")


def test_diff_with_a_kustomization_file_uses_its_spec_and_the_live_inventory(
    kubeconfig: str, apps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ks = kustomization()
    seed(kubeconfig, ks)
    apply_build(kubeconfig, expected_objects(apps, ks))
    inventory = {"entries": [{"id": "default_old_apps_Deployment", "v": "v1"}]}
    kube_run(
        kubeconfig,
        lambda kube: kube.patch_status(
            *KS_API, "apps", "flux-system", {"inventory": inventory}, field_manager="t"
        ),
    )
    local = kustomization()
    local["spec"]["postBuild"]["substitute"]["REPLICAS"] = "4"  # inline wins over substituteFrom
    file = tmp_path / "apps.yaml"
    file.write_text(yaml.safe_dump(local))

    code, out, _ = run(
        capsys, "--kubeconfig", kubeconfig, "diff", "ks", "apps", "--path", str(apps),
        "--kustomization-file", str(file), "--no-progress-bar",
    )  # fmt: skip

    assert code == 1
    assert out.splitlines() == [
        "► Deployment/default/web drifted",
        "spec.replicas",
        "  - 3",
        "  + 4",
        "► Deployment/default/old deleted",
    ]


def test_diff_names_objects_the_cluster_cannot_take_and_exits_2(
    kubeconfig: str, apps: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig, kustomization())
    (apps / "widget.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")

    code, out, err = run(
        capsys, "--kubeconfig", kubeconfig, "diff", "ks", "apps", "--path", str(apps), "--no-progress-bar"
    )

    assert code == 2
    assert "► Deployment/default/web created" in out.splitlines()
    assert (
        "✗ Widget/default/w dry-run failed (NotFound): the server does not serve Widget in example.com/v1"
        in err
    )


def test_unreachable_cluster_and_timeout_say_what_to_do(
    apps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kubeconfig: str
) -> None:
    port = free_port()
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    code, out, err = run(capsys, "--kubeconfig", str(dead), "build", "ks", "apps", "--path", str(apps))
    assert (code, out) == (1, "")
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in err
    assert "--kubeconfig" in err

    seed(kubeconfig, kustomization())
    k = ["--kubeconfig", kubeconfig, "diff", "ks", "apps", "--path", str(apps), "--no-progress-bar"]
    code, out, err = run(capsys, *k, "--timeout", "0s")
    assert (code, out) == (2, "")
    assert err == "✗ timed out after 0s: raise --timeout or check the cluster\n"

    code, _, err = run(capsys, *k, "--timeout", "soon")
    assert code == 2
    assert "invalid --timeout 'soon'" in err


def nested_kustomization(name: str, source: str, path: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": KS_API[0],
            "kind": KS_API[1],
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {
                "interval": "5m",
                "path": path,
                "prune": True,
                "targetNamespace": "default",
                "sourceRef": {"kind": "GitRepository", "name": source},
            },
        }
    )


@pytest.fixture
def clusters(tmp_path: Path) -> Path:
    """A checkout whose `clusters/dev` holds two Kustomizations: `infra` (same source, ./infra)
    and `extras` (another GitRepository)."""
    repo = tmp_path / "fleet"
    (repo / ".git").mkdir(parents=True)
    (repo / "clusters" / "dev").mkdir(parents=True)
    (repo / "clusters" / "dev" / "infra.yaml").write_text(nested_kustomization("infra", "repo", "./infra"))
    (repo / "clusters" / "dev" / "extras.yaml").write_text(nested_kustomization("extras", "other", "./"))
    (repo / "infra").mkdir()
    (repo / "infra" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: infra-settings\ndata:\n  a: b\n"
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n")
    return repo / "clusters" / "dev"


def test_build_recursive_builds_nested_kustomizations_from_local_sources(
    kubeconfig: str, clusters: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig, kustomization(path="./clusters/dev", postBuild=None, targetNamespace=None))
    k = ["--kubeconfig", kubeconfig, "build", "ks", "apps", "--path", str(clusters), "--recursive"]

    code, out, err = run(capsys, *k)
    assert (code, out) == (1, "")
    assert err == (
        "✗ cannot get local path for GitRepository/flux-system/other of Kustomization flux-system/extras:"
        " pass --local-sources GitRepository/flux-system/other=DIR\n"
    )

    code, out, err = run(
        capsys, *k, "--local-sources", f"GitRepository/flux-system/other={tmp_path / 'other'}"
    )
    assert (code, err) == (0, "")
    printed = [
        (o["kind"], o["metadata"]["name"], o["metadata"]["labels"][meta.KUSTOMIZE_NAME_LABEL])
        for o in yaml.safe_load_all(out)
    ]
    assert printed == [
        ("Kustomization", "extras", "apps"),
        ("Kustomization", "infra", "apps"),
        ("ConfigMap", "extra", "extras"),
        ("ConfigMap", "infra-settings", "infra"),
    ]


def test_diff_recursive_diffs_each_nested_kustomization_against_its_own_inventory(
    kubeconfig: str, clusters: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clusters / "extras.yaml").unlink()
    seed(kubeconfig, kustomization(path="./clusters/dev", postBuild=None, targetNamespace=None))
    infra = yaml.safe_load(nested_kustomization("infra", "repo", "./infra"))
    infra["metadata"]["labels"] = LABELS
    apply_build(kubeconfig, [infra])
    inventory = {"entries": [{"id": "default_retired_apps_Deployment", "v": "v1"}]}
    kube_run(
        kubeconfig,
        lambda kube: kube.patch_status(
            *KS_API, "infra", "flux-system", {"inventory": inventory}, field_manager="t"
        ),
    )

    code, out, _ = run(
        capsys, "--kubeconfig", kubeconfig, "diff", "ks", "apps", "--path", str(clusters), "--recursive",
        "--no-progress-bar",
    )  # fmt: skip

    assert code == 1
    assert out.splitlines() == [
        "► ConfigMap/default/infra-settings created",
        "► Deployment/default/retired deleted",
    ]


def test_an_rbac_name_with_a_colon_is_matched_with_its_inventory_entry() -> None:
    """The apply service writes `system:viewer` as `system__viewer`, as Flux does; diff must read
    that entry as the object the build still has, not as one to delete."""
    from libs.cli.inspect import inventory_id, stale_entries

    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:viewer"},
    }
    entries = [
        {"id": "_system__viewer_rbac.authorization.k8s.io_ClusterRole", "v": "v1"},
        {"id": "apps_old_apps_Deployment", "v": "v1"},
    ]
    ks = {"status": {"inventory": {"entries": entries}}}
    assert inventory_id(role) == "_system__viewer_rbac.authorization.k8s.io_ClusterRole"
    assert stale_entries(ks, {inventory_id(role)}) == ["Deployment/apps/old"]
