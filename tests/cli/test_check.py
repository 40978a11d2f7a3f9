"""`sluice check [--pre]` against the Kubernetes emulator and a real nats-server: the pre-check on
a bare cluster, what is missing or stuck named with what to do, and a healthy installation (the
real install render, the real services running) passing with its NATS consumers listed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.cli.check import judge_kubernetes
from libs.cli.install import DEFAULT_COMPONENTS, apply_objects, manifests_dir, objects_of, render
from libs.cli.main import main
from libs.common.api.crd import crd_documents
from libs.common.bus import stream_report
from libs.devservers.nats import NatsServer
from libs.devservers.ports import free_port
from libs.kube_emulator import KubeEmulator
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.notify.app import SPEC as NOTIFY
from services.source.app import SPEC as SOURCE
from tests.cli.conftest import kube_run
from tests.harness.services import running_service
from tests.support import emulated_cluster

pytestmark = pytest.mark.integration

NS = "flux-system"
HOLD = "emulator.sluice.dev/rollout"
CRD_NAMES = [crd["metadata"]["name"] for crd in crd_documents()]
NATS_USERS = ("SOURCE", "BUILD", "APPLY", "NOTIFY", "IMAGE_SCAN", "IMAGE_UPDATE", "CLI")
NO_NATS = (
    "► NATS: not checked (pass --nats URL; each service's readiness already includes its NATS connection)"
)


@pytest.fixture
def empty_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An emulated cluster with nothing of Sluice in it; no NATS URL known to the CLI."""
    monkeypatch.chdir(tmp_path)  # no .run/endpoints.json of a developer's `sluice up`
    for name in ("SLUICE_NATS_URL", "SLUICE_NATS_USER", "SLUICE_NATS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with KubeEmulator.in_thread() as emu:
        yield str(emu.write_kubeconfig(tmp_path / "kubeconfig"))


def check(kubeconfig: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["check", "--kubeconfig", kubeconfig, "--poll-interval", "100ms", *args])
    return code, capsys.readouterr().out.splitlines()


def install(kubeconfig: str, objects: list[dict[str, Any]]) -> None:
    kube_run(kubeconfig, lambda kube: apply_objects(kube, objects, lambda line: None))


def held(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The objects with the emulator's rollout held on workload `name` (it never becomes ready)."""
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == name:
            obj["metadata"].setdefault("annotations", {})[HOLD] = "hold"
    return objects


@pytest.mark.unit
@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"gitVersion": "v1.32.0"}, (True, "Kubernetes 1.32.0 >=1.28.0-0")),
        ({"gitVersion": "v1.28.0"}, (True, "Kubernetes 1.28.0 >=1.28.0-0")),
        ({"gitVersion": "v1.30.1-gke.1128000"}, (True, "Kubernetes 1.30.1 >=1.28.0-0")),
        ({"major": "1", "minor": "29+"}, (True, "Kubernetes 1.29.0 >=1.28.0-0")),
        (
            {"gitVersion": "v1.27.16"},
            (False, "Kubernetes version 1.27.16 does not match >=1.28.0-0: upgrade the cluster"),
        ),
        ({"gitVersion": "dev"}, (False, "cannot tell the Kubernetes version from 'dev'")),
    ],
)
def test_kubernetes_version_against_the_minimum(info: dict[str, str], expected: tuple[bool, str]) -> None:
    """The emulator always says v1.32.0; the other answers real API servers give, as data."""
    assert judge_kubernetes(info) == expected


def test_pre_check_passes_on_the_emulator(empty_cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(empty_cluster, capsys, "--pre")
    assert code == 0, out
    assert out[:3] == [
        "► checking prerequisites",
        "✔ Kubernetes 1.32.0 >=1.28.0-0",
        "► checking permissions to install",
    ]
    # The emulator enforces no RBAC: every review comes back allowed, so only the ✔ path shows here.
    assert "✔ can create, patch customresourcedefinitions.apiextensions.k8s.io" in out
    assert "✔ can create, patch clusterrolebindings.rbac.authorization.k8s.io" in out
    assert "✔ can create, patch deployments.apps in namespace flux-system" in out
    assert "✔ can create, patch secrets in namespace flux-system" in out
    assert len([line for line in out if line.startswith("✔ can ")]) == 13
    assert out[-1] == "✔ prerequisites checks passed"


def test_unreachable_cluster_says_what_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with KubeEmulator.in_thread() as emu:
        kubeconfig = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
    code, out = check(kubeconfig, capsys, "--pre")
    assert code == 1
    assert out[1].startswith("✗ cannot reach the Kubernetes API at http")
    assert "--kubeconfig" in out[1]
    assert out[-1] == "✗ check failed: fix the ✗ lines above before installing"


def test_no_usable_kubeconfig_says_how_to_point_at_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(str(tmp_path / "no-such-kubeconfig"), capsys)
    assert code == 1
    assert len(out) == 1 and out[0].startswith("✗ no usable Kubernetes configuration: ")
    assert "--kubeconfig/--context" in out[0]


def test_empty_cluster_fails_naming_every_missing_part(
    empty_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(empty_cluster, capsys)
    assert code == 1
    assert "✗ no Sluice components found in namespace flux-system: install with `sluice install`" in out
    for name in CRD_NAMES:
        assert f"✗ {name} not found: install the CRDs with `sluice install`" in out
    assert NO_NATS in out  # not pretended: without a URL the stream is not looked at
    assert (
        out[-1] == "✗ check failed: fix the ✗ lines above; `sluice install` repairs missing or outdated parts"
    )


def test_held_rollout_missing_crd_and_missing_component_are_named(
    empty_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    install(empty_cluster, held(objects_of(render(DEFAULT_COMPONENTS)), "sluice-build"))
    kube_run(
        empty_cluster,
        lambda kube: kube.delete(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "ocirepositories.source.toolkit.fluxcd.io"
        ),
    )

    # what the apply service puts on the objects of a Kustomization, as after `sluice bootstrap`
    label = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "flux-system"}}}
    kube_run(empty_cluster, lambda kube: kube.patch("v1", "Namespace", NS, label))

    code, out = check(empty_cluster, capsys, "--timeout", "2s", "--components-extra", "image-scan")

    assert code == 1
    assert "✔ distribution: sluice-v0.1.0" in out
    assert "✔ bootstrapped: true" in out
    waiting = out.index("► checking controllers") + 1
    assert out[waiting].startswith("◎ waiting for ") and "sluice-build" in out[waiting]
    assert out[waiting].endswith(" to be ready (up to 2s)")
    stuck = [line for line in out if line.startswith("✗ sluice-build: deployment not ready: ")]
    assert len(stuck) == 1 and "kubectl -n flux-system describe deployment sluice-build" in stuck[0]
    for ready in ("sluice-source", "sluice-apply", "sluice-notify"):
        assert f"✔ {ready}: deployment ready" in out
        assert f"► ghcr.io/sluice-dev/{ready}:0.1.0" in out
    assert "✔ sluice-nats: statefulset ready" in out
    missing = [
        line for line in out if line.startswith("✗ image-scan: deployment sluice-image-scan not found")
    ]
    assert len(missing) == 1
    assert missing[0].endswith(
        "(install it: sluice install --components source,build,apply,notify,image-scan)"
    )
    assert "✔ gitrepositories.source.toolkit.fluxcd.io/v1" in out
    assert "✔ imagepolicies.image.toolkit.fluxcd.io/v1" in out
    assert (
        "✗ ocirepositories.source.toolkit.fluxcd.io not found: install the CRDs with `sluice install`" in out
    )
    assert out[-1].startswith("✗ check failed")


def test_a_workload_without_labels_is_still_found_by_its_name(
    empty_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = objects_of(render(DEFAULT_COMPONENTS))
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "sluice-apply":
            del obj["metadata"]["labels"]
    install(empty_cluster, objects)
    code, out = check(empty_cluster, capsys, "--timeout", "30s")
    assert code == 0, out
    assert "✔ distribution: sluice-v0.1.0" in out
    assert "► version unknown for sluice-apply (no app.kubernetes.io/version label)" in out
    assert "✔ sluice-apply: deployment ready" in out


def test_unknown_component_is_refused_with_the_valid_names(
    empty_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(empty_cluster, capsys, "--components", "source,helm-controller")
    assert code == 1
    assert out[0].startswith("✗ ") and "helm-controller" in out[0]


def test_a_stream_nobody_created_is_reported_missing_not_created(
    empty_cluster: str, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    install(empty_cluster, objects_of(render(DEFAULT_COMPONENTS)))
    code, out = check(empty_cluster, capsys, "--nats", nats_url)
    assert code == 1
    assert any(line.startswith("✔ NATS server 2.") for line in out)
    assert any(line.startswith("✗ stream SLUICE not found: no Sluice service has connected") for line in out)
    assert not asyncio.run(stream_report(nats_url)).exists


async def sluice(cwd: Path, *argv: str) -> tuple[int, list[str]]:
    """The CLI in its own process (the services run on this test's event loop), with no NATS
    settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_NATS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "libs.cli.main", *argv,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode().splitlines()


async def test_healthy_installation_passes_with_its_nats_consumers(nats_url: str, tmp_path: Path) -> None:
    async with emulated_cluster(tmp_path) as cluster, contextlib.AsyncExitStack() as services:
        await apply_objects(cluster.kube, objects_of(render(DEFAULT_COMPONENTS)), lambda line: None)
        common = {"nats_url": nats_url, "kubeconfig": cluster.kubeconfig}
        await services.enter_async_context(
            running_service(
                SOURCE,
                **common,
                artifact_store=f"file://{tmp_path / 'source'}",
                artifact_addr="127.0.0.1:0",
                git_cache_dir=str(tmp_path / "git-cache"),
            )
        )
        await services.enter_async_context(
            running_service(
                BUILD, **common, artifact_store=f"file://{tmp_path / 'build'}", artifact_addr="127.0.0.1:0"
            )
        )
        await services.enter_async_context(running_service(APPLY, **common))
        argv = ("check", "--kubeconfig", cluster.kubeconfig, "--nats", nats_url, "--poll-interval", "100ms")

        # notify is installed but not connected to this NATS server: its consumer is missing
        code, out = await sluice(tmp_path, *argv)
        assert code == 1, "\n".join(out)
        assert any(line.startswith("✗ notify: no durable consumer on stream SLUICE") for line in out)
        assert not any(line.startswith(("✗ source", "✗ build", "✗ apply")) for line in out)

        await services.enter_async_context(
            running_service(NOTIFY, **common, receiver_addr=f"127.0.0.1:{free_port()}")
        )
        code, out = await sluice(tmp_path, *argv)

    assert code == 0, "\n".join(out)
    assert out[:4] == [
        "► checking prerequisites",
        "✔ Kubernetes 1.32.0 >=1.28.0-0",
        "► checking version in cluster",
        "✔ distribution: sluice-v0.1.0",
    ]
    assert "✔ sluice-nats: statefulset ready" in out
    assert "► nats:2.10-alpine" in out
    for component in DEFAULT_COMPONENTS:
        assert f"✔ sluice-{component}: deployment ready" in out
        assert f"► ghcr.io/sluice-dev/sluice-{component}:0.1.0" in out
    crds = [line for line in out if ".toolkit.fluxcd.io" in line]
    assert crds == [line for line in crds if line.startswith("✔ ")] and len(crds) == len(CRD_NAMES)
    assert "✔ bootstrapped: false" in out  # installed, not managed from Git
    assert f"► checking NATS at {nats_url}" in out
    assert any(line.startswith("✔ NATS server 2.") for line in out)
    assert any(line.startswith("✔ stream SLUICE: ") for line in out)
    consumers = {line.split()[2].rstrip(":") for line in out if line.startswith("✔ consumer ")}
    assert {
        "source-reconcile-gitrepository",
        "build-artifact-ready",
        "build-reconcile-kustomization",
        "apply-build-ready",
        "notify-events",
    } <= consumers
    assert out[-1] == "✔ all checks passed"


def test_nats_credentials_from_the_environment_are_used_and_never_shown(
    empty_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against deploy/k8s's own nats.conf (one user per component, `cli` among them)."""
    passwords = {f"NATS_PASSWORD_{c}": f"pw-{c.lower()}" for c in NATS_USERS}
    server = NatsServer(tmp_path / "nats", config_file=manifests_dir() / "nats" / "nats.conf", env=passwords)
    with server:
        monkeypatch.setenv("SLUICE_NATS_USER", "cli")
        monkeypatch.setenv("SLUICE_NATS_PASSWORD", "not-the-cli-password")
        code, out = check(empty_cluster, capsys, "--nats", server.url, "--timeout", "1s")
    assert code == 1
    refused = [line for line in out if line.startswith("✗ cannot reach NATS at ")]
    assert len(refused) == 1 and "authorization violation" in refused[0].lower()
    assert "SLUICE_NATS_USER/SLUICE_NATS_PASSWORD" in refused[0]
    assert not any("not-the-cli-password" in line for line in out)
