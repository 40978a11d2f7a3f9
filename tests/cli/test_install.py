"""`sluice install`: the rendered deploy/k8s for the chosen components, applied to an emulated
cluster and awaited; idempotent; held or failed rollouts reported with what to do."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.cli.install import (
    DEFAULT_COMPONENTS,
    NAMESPACE,
    PART_OF_LABEL,
    InstallError,
    _with_passwords,
    manifests_dir,
    objects_of,
    render,
    select_components,
)
from libs.cli.main import main
from libs.common.kube import Kube
from libs.kstatus import compute
from libs.kube_emulator import KubeEmulator
from libs.kustomize import build
from tests.cli.conftest import kube_run
from tests.support import eventually

pytestmark = pytest.mark.integration

COMPONENT_LABEL = "app.kubernetes.io/component"
NATS_USERS = "sluice-nats-users"
HOLD = "emulator.sluice.dev/rollout"


@pytest.fixture
def empty_cluster(tmp_path: Path) -> Iterator[str]:
    """The kubeconfig of an emulated cluster with nothing of Sluice in it."""
    with KubeEmulator.in_thread() as emu:
        yield str(emu.write_kubeconfig(tmp_path / "kubeconfig"))


def install(kubeconfig: str, *args: str) -> int:
    return main(["install", "--kubeconfig", kubeconfig, *args])


def ref(obj: dict[str, Any]) -> tuple[str, str, str, str | None]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def cluster_state(kubeconfig: str, objects: list[dict[str, Any]]) -> dict[Any, dict[str, Any] | None]:
    """Each of `objects` as the cluster has it now (None when absent)."""

    async def read(kube: Kube) -> dict[Any, dict[str, Any] | None]:
        return {ref(o): await kube.get(*ref(o)) for o in objects}

    return kube_run(kubeconfig, read)


def nats_passwords(kubeconfig: str) -> dict[str, str]:
    async def read(kube: Kube) -> dict[str, Any] | None:
        return await kube.get("v1", "Secret", NATS_USERS, NAMESPACE)

    secret = kube_run(kubeconfig, read)
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def line_ref(obj: dict[str, Any]) -> str:
    """How progress lines name an object: Kind/namespace/name, or Kind/name when cluster-scoped."""
    _, kind, name, namespace = ref(obj)
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def secret_values(secret: dict[str, Any]) -> set[str]:
    values = {str(v) for v in (secret.get("stringData") or {}).values()}
    return values | {base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()}


def deployments(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}


# --- choosing components --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("components", "extra", "expected"),
    [
        (None, None, ["source", "build", "apply", "notify"]),
        (None, "image-scan,image-update", ["source", "build", "apply", "notify", "image-scan", "image-update"]),
        ("source,notify", None, ["source", "notify"]),
        ("notify, source ,source", "", ["source", "notify"]),
        ("source-controller,kustomize-controller", None, ["source", "build", "apply"]),
        (None, "image-reflector-controller,image-automation-controller", [*DEFAULT_COMPONENTS, "image-scan", "image-update"]),
        ("notification-controller", "image-scan", ["notify", "image-scan"]),
    ],
)  # fmt: skip
def test_select_components(components: str | None, extra: str | None, expected: list[str]) -> None:
    assert select_components(components, extra) == expected


@pytest.mark.parametrize(
    ("components", "extra", "message"),
    [
        ("source,helm-controller", None, "component 'helm-controller' is not supported yet"),
        (None, "image-scanner", "unknown component 'image-scanner'; valid components: source, build, apply"),
        ("", None, "no components chosen"),
    ],
)
def test_select_components_rejects(components: str | None, extra: str | None, message: str) -> None:
    with pytest.raises(InstallError, match=message):
        select_components(components, extra)


def test_objects_of_rejects_what_is_not_an_object_without_quoting_it() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\nstringData: {password: hunter2}\n"
    with pytest.raises(InstallError, match="document 3 of the manifests is not a Kubernetes object") as info:
        objects_of(text)
    assert "hunter2" not in str(info.value)


# --- export ---------------------------------------------------------------------------------------


def test_export_is_deterministic_and_holds_exactly_the_chosen_components(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No cluster is needed: the kubeconfig does not exist.
    argv = ["install", "--export", "--kubeconfig", "/nonexistent"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert first == render(DEFAULT_COMPONENTS)
    assert first.startswith("---\n# Sluice version: 0.1.0\n# Components: source,build,apply,notify\n")

    objects = objects_of(first)
    assert deployments(objects) == {f"sluice-{c}" for c in DEFAULT_COMPONENTS}
    components = {(o["metadata"].get("labels") or {}).get(COMPONENT_LABEL) for o in objects}
    assert components - {None} <= {"nats", "crds", "storage", *DEFAULT_COMPONENTS}
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"] == [NAMESPACE]
    assert any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "sluice-nats" for o in objects)
    assert sum(o["kind"] == "CustomResourceDefinition" for o in objects) == 13
    # uninstall finds what install made by this label
    key, value = PART_OF_LABEL
    assert all((o["metadata"].get("labels") or {}).get(key) == value for o in objects)

    assert main([*argv, "--components", "source-controller", "--components-extra", "image-scan"]) == 0
    chosen = objects_of(capsys.readouterr().out)
    assert deployments(chosen) == {"sluice-source", "sluice-image-scan"}


@pytest.mark.parametrize(
    ("directory", "components"),
    [(".", (*DEFAULT_COMPONENTS, "image-scan", "image-update")), ("overlays/minimal", DEFAULT_COMPONENTS)],
)
def test_render_installs_what_kubectl_apply_k_would(directory: str, components: tuple[str, ...]) -> None:
    """Per-directory rendering and the overlays (`kubectl apply -k deploy/k8s`) agree object for object."""

    def by_ref(objects: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        return {ref(o): o for o in objects}

    overlay = build(manifests_dir() / directory).resources
    assert by_ref(objects_of(render(components))) == by_ref(overlay)


def test_export_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--export", "--components", "helm-controller"]) == 1
    assert "✗ component 'helm-controller' is not supported yet" in capsys.readouterr().err

    assert main(["install", "--export", "--manifests", str(tmp_path)]) == 1
    assert "is not a Sluice deploy/k8s directory" in capsys.readouterr().err

    incomplete = tmp_path / "k8s"
    shutil.copytree(manifests_dir(), incomplete)
    shutil.rmtree(incomplete / "services" / "notify")
    assert main(["install", "--export", "--manifests", str(incomplete)]) == 1
    err = capsys.readouterr().err
    assert "services/notify is missing" in err and "pass --manifests DIR" in err

    assert main(["install", "--export", "-n", "sluice"]) == 1
    assert "-n/--namespace sluice is not supported yet" in capsys.readouterr().err

    assert main(["install", "--export", "--timeout", "soon"]) == 1
    assert "--timeout" in capsys.readouterr().err


# --- install --------------------------------------------------------------------------------------


def test_install_applies_everything_and_waits(empty_cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(empty_cluster, "--components-extra", "image-scan") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == [
        "✚ generating manifests",
        "✔ manifests build completed",
        f"► installing components in {NAMESPACE} namespace",
    ]
    assert lines[-1] == "✔ install finished"
    assert "◎ verifying installation" in lines
    for name in (
        "sluice-nats: statefulset",
        *(f"sluice-{c}: deployment" for c in (*DEFAULT_COMPONENTS, "image-scan")),
    ):
        assert f"✔ {name} ready" in lines
    assert "✔ sluice-image-update: deployment ready" not in lines
    # CRDs go first, then the namespace, then the rest
    kinds = [line.split("/")[0] for line in lines if "/" in line and not line.startswith(("✔", "►"))]
    assert kinds.index("Namespace") == kinds.count("CustomResourceDefinition")

    objects = objects_of(render(select_components(None, "image-scan")))
    state = cluster_state(empty_cluster, objects)
    assert [r for r, obj in state.items() if obj is None] == []
    for obj in objects:
        assert any(line.startswith(f"{line_ref(obj)} ") for line in lines)
        if obj["kind"] in ("Deployment", "StatefulSet"):
            assert compute(state[ref(obj)]).current

    passwords = nats_passwords(empty_cluster)
    assert "cli" in passwords and "source" in passwords
    shipped = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == NATS_USERS)
    placeholders = secret_values(shipped)
    assert len(set(passwords.values())) == len(passwords)  # each user its own random password
    for password in passwords.values():
        assert len(password) >= 24 and password not in placeholders and password not in out


def settled(kubeconfig: str, objects: list[dict[str, Any]]) -> dict[Any, str]:
    """resourceVersions once every object's status is final (the emulator binds PVCs a moment
    after they are created, which would otherwise look like a change)."""

    async def versions(kube: Kube) -> dict[Any, str] | None:
        state = {ref(o): await kube.get(*ref(o)) for o in objects}
        if not all(obj is not None and compute(obj).current for obj in state.values()):
            return None
        return {r: obj["metadata"]["resourceVersion"] for r, obj in state.items() if obj is not None}

    async def wait(kube: Kube) -> dict[Any, str]:
        result: dict[Any, str] = await eventually(lambda: versions(kube), 10, "the install to settle")
        return result

    return kube_run(kubeconfig, wait)


def test_reinstall_changes_nothing_and_keeps_the_nats_passwords(
    empty_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(empty_cluster) == 0
    capsys.readouterr()
    objects = objects_of(render(DEFAULT_COMPONENTS))
    before = settled(empty_cluster, objects)
    passwords = nats_passwords(empty_cluster)

    assert install(empty_cluster) == 0
    lines = capsys.readouterr().out.splitlines()
    assert settled(empty_cluster, objects) == before
    assert nats_passwords(empty_cluster) == passwords
    applied = [line for line in lines if not line.startswith(("✚", "✔", "►", "◎"))]
    assert len(applied) == len(objects)
    skipped = (
        f"Secret/{NAMESPACE}/{NATS_USERS} skipped (exists; kustomize.toolkit.fluxcd.io/ssa: IfNotPresent)"
    )
    assert [line for line in applied if not line.endswith(" unchanged")] == [skipped]

    # adding a component later applies only what is new
    assert install(empty_cluster, "--components-extra", "image-update") == 0
    created = [line for line in capsys.readouterr().out.splitlines() if line.endswith(" created")]
    assert created and all("sluice-image-update" in line for line in created)
    assert nats_passwords(empty_cluster) == passwords


def annotated_copy(tmp_path: Path, component: str, mode: str) -> Path:
    """deploy/k8s copied with the emulator's rollout annotation on one component's objects."""
    copy = tmp_path / "k8s"
    shutil.copytree(manifests_dir(), copy)
    kustomization = copy / "services" / component / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    doc.setdefault("commonAnnotations", {})[HOLD] = mode
    kustomization.write_text(yaml.safe_dump(doc))
    return copy


def test_held_rollout_times_out_naming_the_deployment(
    empty_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = annotated_copy(tmp_path, "build", "hold")
    assert install(empty_cluster, "--manifests", str(manifests), "--timeout", "1s") == 1
    captured = capsys.readouterr()
    assert "✔ sluice-source: deployment ready" in captured.out
    assert "✔ install finished" not in captured.out
    err = captured.err.strip()
    assert err.startswith(f"✗ timed out after 1s waiting for Deployment/{NAMESPACE}/sluice-build (")
    assert "sluice-source" not in err
    assert f"kubectl -n {NAMESPACE} describe deployment sluice-build" in err
    assert "--timeout" in err


def test_failed_rollout_fails_at_once(
    empty_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = annotated_copy(tmp_path, "notify", "fail")
    assert install(empty_cluster, "--manifests", str(manifests), "--timeout", "5m") == 1
    err = capsys.readouterr().err
    assert f"✗ Deployment/{NAMESPACE}/sluice-notify failed: " in err
    assert "failed: Progress deadline exceeded." in err


def test_unreachable_cluster_says_what_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with KubeEmulator.in_thread() as emu:
        kubeconfig = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
    assert install(kubeconfig) == 1
    err = capsys.readouterr().err
    assert "✗ cannot reach the Kubernetes API at http" in err
    assert "--kubeconfig" in err


def test_an_immutable_change_says_how_to_get_past_it(
    empty_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(empty_cluster) == 0
    changed = tmp_path / "k8s"
    shutil.copytree(manifests_dir(), changed)
    statefulset = changed / "nats" / "statefulset.yaml"
    doc = yaml.safe_load(statefulset.read_text())
    doc["spec"]["serviceName"] = "sluice-nats-renamed"
    statefulset.write_text(yaml.safe_dump(doc))
    capsys.readouterr()

    assert install(empty_cluster, "--manifests", str(changed)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"✗ applying StatefulSet/{NAMESPACE}/sluice-nats failed: ")
    assert (
        f"delete it (`kubectl -n {NAMESPACE} delete statefulset sluice-nats`) and run `sluice install` again"
        in err
    )

    async def follow_the_advice(kube: Kube) -> None:
        await kube.delete("apps/v1", "StatefulSet", "sluice-nats", NAMESPACE)

    kube_run(empty_cluster, follow_the_advice)
    assert install(empty_cluster, "--manifests", str(changed)) == 0


def test_generated_nats_passwords_always_parse_in_the_shipped_nats_conf(tmp_path: Path) -> None:
    """nats.conf reads each password unquoted from the environment, and nats-server parses such a
    value as config: one starting with a digit or '-' became a number, size or date, or stopped
    the server (about 1 install in 5 before passwords started with a letter)."""
    [secret] = [
        o
        for o in objects_of(render(["source", "build", "apply", "notify", "image-scan", "image-update"]))
        if o["kind"] == "Secret" and o["metadata"]["name"] == "sluice-nats-users"
    ]
    config = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats" / "nats.conf"
    for _ in range(60):
        env = dict(os.environ)
        for user, password in _with_passwords(secret)["stringData"].items():
            env["NATS_PASSWORD_" + user.upper().replace("-", "_")] = password
        result = subprocess.run(
            ["nats-server", "-t", "-c", str(config)], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, "a generated password broke nats.conf (not shown: it is a secret)"
