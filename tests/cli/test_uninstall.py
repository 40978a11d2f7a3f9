"""`sluice uninstall`: everything Sluice installed goes (custom resources first freed of their
finalizers, since no service is left to remove them), or CRDs and custom resources stay with
--keep-crds; --dry-run deletes nothing; it only proceeds unasked with --silent."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.cli.install import ALL_COMPONENTS, COMPONENT_KINDS, NAMESPACE, PART_OF_LABEL, objects_of, render
from libs.cli.main import main
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator
from tests.cli.conftest import kube_run
from tests.cli.test_install import install, nats_passwords, ref, settled

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FINALIZER = "finalizers.fluxcd.io"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


@pytest.fixture
def installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    """An emulated cluster with Sluice (all components) installed and two custom resources
    holding Flux's finalizer, one outside flux-system; yields the kubeconfig."""
    with KubeEmulator.in_thread() as emu:
        kubeconfig = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
        assert install(kubeconfig, "--components-extra", "image-scan,image-update") == 0
        kube_run(kubeconfig, create_custom_resources)
        capsys.readouterr()
        yield kubeconfig


async def create_custom_resources(kube: Kube) -> None:
    await kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}, field_manager="t"
    )
    await kube.apply(
        {
            "apiVersion": GIT,
            "kind": "GitRepository",
            "metadata": {"name": "podinfo", "namespace": NAMESPACE, "finalizers": [FINALIZER]},
            "spec": {
                "url": "https://github.com/stefanprodan/podinfo",
                "interval": "1m",
                "ref": {"branch": "master"},
            },
        },
        field_manager="t",
    )
    await kube.apply(
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "apps", "finalizers": [FINALIZER]},
            "spec": {
                "interval": "5m",
                "path": "./kustomize",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "podinfo", "namespace": NAMESPACE},
            },
        },
        field_manager="t",
    )


def uninstall(kubeconfig: str, *args: str) -> int:
    return main(["uninstall", "--kubeconfig", kubeconfig, *args])


def sluice_objects(kubeconfig: str) -> list[str]:
    """Every object still in the cluster that Sluice installed or defines: labelled components,
    Sluice's CRDs, Flux custom resources and the namespace."""

    async def find(kube: Kube) -> list[str]:
        found: list[str] = []
        selector = "=".join(PART_OF_LABEL)
        for api_version, kind, namespaced in COMPONENT_KINDS:
            items, _ = await kube.list_objects(
                api_version, kind, NAMESPACE if namespaced else None, label_selector=selector
            )
            found += [f"{kind}/{i['metadata']['name']}" for i in items]
        crds, _ = await kube.list_objects(*CRD)
        found += [
            f"CRD/{c['metadata']['name']}" for c in crds if c["spec"]["group"].endswith(".toolkit.fluxcd.io")
        ]
        for api_version, kind in ((GIT, "GitRepository"), (KS, "Kustomization")):
            if any(c["spec"]["names"]["kind"] == kind for c in crds):
                items, _ = await kube.list_objects(api_version, kind)
                found += [f"{kind}/{i['metadata']['name']}" for i in items]
        if await kube.get("v1", "Namespace", NAMESPACE) is not None:
            found.append(f"Namespace/{NAMESPACE}")
        return found

    return kube_run(kubeconfig, find)


def custom_resources(kubeconfig: str) -> dict[str, dict[str, Any] | None]:
    async def read(kube: Kube) -> dict[str, dict[str, Any] | None]:
        return {
            "podinfo": await kube.get(GIT, "GitRepository", "podinfo", NAMESPACE),
            "apps": await kube.get(KS, "Kustomization", "apps", "apps"),
        }

    return kube_run(kubeconfig, read)


class Deletions:
    """Watches GitRepositories on a thread and keeps the object of each DELETED event, to see
    what state a custom resource was in when it went."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.deleted: list[dict[str, Any]] = []
        self.watching = threading.Event()
        self._thread = threading.Thread(target=lambda: kube_run(kubeconfig, self._watch), daemon=True)

    async def _watch(self, kube: Kube) -> None:
        _, version = await kube.list_objects(GIT, "GitRepository")
        self.watching.set()
        events = kube.watch(GIT, "GitRepository", resource_version=version, timeout_seconds=30)
        async with asyncio.timeout(30):
            async for event in events:
                if event.type == "DELETED":
                    self.deleted.append(event.object)
                    return

    def __enter__(self) -> Deletions:
        self._thread.start()
        assert self.watching.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=30)


def test_uninstall_removes_everything_custom_resources_with_finalizers_included(
    installed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    passwords = nats_passwords(installed)
    with Deletions(installed) as deletions:
        assert uninstall(installed, "--silent", "--timeout", "30s") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert captured.err == ""
    assert lines[0] == f"► deleting components in {NAMESPACE} namespace"
    assert lines[-1] == "✔ uninstall finished"
    for line in (
        f"✔ Deployment/{NAMESPACE}/sluice-source deleted",
        f"✔ StatefulSet/{NAMESPACE}/sluice-nats deleted",
        f"✔ Secret/{NAMESPACE}/sluice-nats-users deleted",
        f"✔ GitRepository/{NAMESPACE}/podinfo finalizers deleted",
        "✔ Kustomization/apps/apps finalizers deleted",
        f"✔ GitRepository/{NAMESPACE}/podinfo deleted",
        "✔ CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io deleted",
        f"✔ Namespace/{NAMESPACE} deleted",
    ):
        assert line in lines
    # the components went before any custom resource, and those before their CRDs
    order = [line.split("/")[0].removeprefix("✔ ") for line in lines if line.endswith(" deleted")]
    assert order.index("GitRepository") > order.index("Deployment")
    assert order.index("CustomResourceDefinition") > order.index("Kustomization")

    assert sluice_objects(installed) == []
    # the custom resource was freed of its finalizer before it went (nothing would remove it)
    assert [d["metadata"].get("finalizers") for d in deletions.deleted] == [None]
    for password in passwords.values():
        assert password not in captured.out

    # nothing left: running it again is harmless
    assert uninstall(installed, "--silent") == 0
    assert [line for line in capsys.readouterr().out.splitlines() if "deleted" in line] == []


def test_keep_crds_keeps_crds_and_custom_resources_for_a_reinstall(
    installed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert uninstall(installed, "--silent", "--keep-crds") == 0
    out = capsys.readouterr().out
    assert f"◎ keeping namespace {NAMESPACE} (--keep-crds: its custom resources stay)" in out
    assert "CustomResourceDefinition" not in out and "finalizers" not in out
    left = sluice_objects(installed)
    assert f"Namespace/{NAMESPACE}" in left
    assert sum(o.startswith("CRD/") for o in left) == 13
    assert not [o for o in left if o.startswith(("Deployment/", "StatefulSet/", "Secret/", "ClusterRole"))]
    kept = custom_resources(installed)
    assert all(obj is not None and obj["metadata"]["finalizers"] == [FINALIZER] for obj in kept.values())

    assert install(installed, "--components-extra", "image-scan,image-update") == 0
    capsys.readouterr()
    assert custom_resources(installed) == kept


def test_keep_namespace(installed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert uninstall(installed, "--silent", "--keep-namespace") == 0
    assert f"◎ keeping namespace {NAMESPACE} (--keep-namespace)" in capsys.readouterr().out
    assert sluice_objects(installed) == [f"Namespace/{NAMESPACE}"]


def test_dry_run_lists_and_deletes_nothing(installed: str, capsys: pytest.CaptureFixture[str]) -> None:
    objects = objects_of(render(ALL_COMPONENTS))
    before = settled(installed, objects)
    resources = custom_resources(installed)

    assert uninstall(installed, "--dry-run") == 0  # no confirmation asked: nothing is deleted
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "✔ uninstall finished (dry run)"
    assert f"✔ Deployment/{NAMESPACE}/sluice-image-update deleted (dry run)" in lines
    assert f"✔ GitRepository/{NAMESPACE}/podinfo finalizers deleted (dry run)" in lines
    assert "✔ CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io deleted (dry run)" in lines
    assert f"✔ Namespace/{NAMESPACE} deleted (dry run)" in lines
    listed = {line.removeprefix("✔ ").removesuffix(" deleted (dry run)") for line in lines}
    for obj in objects:
        _, kind, name, namespace = ref(obj)
        assert (f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}") in listed

    assert settled(installed, objects) == before
    assert custom_resources(installed) == resources


def test_refuses_to_ask_without_a_terminal(installed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert uninstall(installed) == 1
    captured = capsys.readouterr()
    assert "stdin is not a terminal; pass --silent" in captured.err
    assert captured.out == ""
    assert len(sluice_objects(installed)) > 30


def answer_prompt(kubeconfig: str, answer: str) -> subprocess.CompletedProcess[str]:
    """Run `sluice uninstall` with a terminal on stdin and type `answer` at its question."""
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "libs.cli.main", "uninstall", "--kubeconfig", kubeconfig],
            cwd=ROOT,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            os.write(leader, f"{answer}\n".encode())
            out, err = proc.communicate(timeout=60)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        os.close(leader)
        os.close(follower)


def test_asks_on_a_terminal(installed: str) -> None:
    refused = answer_prompt(installed, "n")
    assert refused.returncode == 1
    assert refused.stdout.startswith(
        "Are you sure you want to delete Sluice, its custom resource definitions and every custom resource? [y/N] "
    )
    assert "✗ aborting: nothing was deleted" in refused.stderr
    assert len(sluice_objects(installed)) > 30

    confirmed = answer_prompt(installed, "y")
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.rstrip().endswith("✔ uninstall finished")
    assert sluice_objects(installed) == []


def test_a_deletion_held_elsewhere_times_out_naming_it(
    installed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "sluice-held",
            "namespace": NAMESPACE,
            "labels": dict([PART_OF_LABEL]),
            "finalizers": ["example.com/hold"],
        },
    }

    async def hold(kube: Kube) -> None:
        await kube.apply(held, field_manager="t")

    kube_run(installed, hold)
    assert uninstall(installed, "--silent", "--timeout", "1s") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"✗ timed out after 1s waiting for the deletion of ConfigMap/{NAMESPACE}/sluice-held"
    )
    assert "`sluice uninstall` is safe to run again" in err
