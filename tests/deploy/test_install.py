"""Every overlay installs on the Kubernetes API the way an installer does it (CRDs, then the
Namespace, then the rest, with server-side apply), the API accepts every object, and the workloads
roll out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from libs.common.kube import Kube
from libs.kstatus import compute
from libs.kube_emulator import KubeEmulator
from libs.kustomize import build
from tests.deploy.manifests import DEPLOY, OVERLAYS, built, workloads
from tests.support import eventually

pytestmark = pytest.mark.integration

FIELD_MANAGER = "sluice-install-test"


def install_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CRDs first (kinds must exist before their objects), then Namespaces, then the rest as built."""
    rank = {"CustomResourceDefinition": 0, "Namespace": 1}
    return sorted(objects, key=lambda o: rank.get(o["kind"], 2))


async def install(kube: Kube, objects: list[dict[str, Any]]) -> None:
    for obj in install_order(objects):
        await kube.apply(obj, field_manager=FIELD_MANAGER)


def with_autoscaling(tmp_path: Path) -> list[dict[str, Any]]:
    """overlays/full plus the optional HPA component, as a user's overlay would add it."""
    copy = tmp_path / "checkout"
    shutil.copytree(DEPLOY, copy / "deploy" / "k8s")
    mine = copy / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        "resources: [../deploy/k8s/overlays/full]\ncomponents: [../deploy/k8s/components/autoscaling]\n"
    )
    return build(mine).resources


@pytest.mark.parametrize("overlay", [*OVERLAYS, "full+autoscaling"])
async def test_overlay_applies_cleanly_and_every_workload_rolls_out(overlay: str, tmp_path: Path) -> None:
    objects = with_autoscaling(tmp_path) if overlay == "full+autoscaling" else built(f"overlays/{overlay}")
    async with KubeEmulator() as emulator:
        kube = Kube.from_config(str(emulator.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            await install(kube, objects)
            for obj in objects:
                md = obj["metadata"]
                live = await kube.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
                assert live is not None, f"{obj['kind']}/{md['name']} was not stored"
                assert md["labels"].items() <= live["metadata"]["labels"].items()

            async def rolled_out() -> list[str]:
                pending = []
                for workload in workloads(objects):
                    md = workload["metadata"]
                    live = await kube.get(
                        workload["apiVersion"], workload["kind"], md["name"], md["namespace"]
                    )
                    status = compute(live)
                    if not status.current:
                        pending.append(f"{workload['kind']}/{md['name']}: {status.message}")
                return pending

            async def none_pending() -> bool:
                return not await rolled_out()

            await eventually(none_pending, timeout=20, what=f"{overlay}'s workloads to roll out")
            # Applying the same manifests again changes nothing (an installer re-run, a self-managing
            # install): the API accepts it and the workloads stay rolled out.
            await install(kube, objects)
            assert await rolled_out() == []
        finally:
            await kube.close()


async def test_installed_crds_validate_custom_resources(tmp_path: Path) -> None:
    """The CRDs the overlay installs carry their schemas: the API refuses a GitRepository without
    spec.url and an invalid object name, and accepts a correct one."""
    from libs.common.kube import Invalid

    repo = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "url": "https://github.com/stefanprodan/podinfo",
            "ref": {"branch": "master"},
        },
    }
    async with KubeEmulator() as emulator:
        kube = Kube.from_config(str(emulator.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            await install(kube, built("overlays/minimal"))
            without_url = {**repo, "spec": {"interval": "1m"}}
            with pytest.raises(Invalid):
                await kube.apply(without_url, field_manager=FIELD_MANAGER)
            bad_name = {**repo, "metadata": {"name": "Not_A_Name", "namespace": "flux-system"}}
            with pytest.raises(Invalid):
                await kube.apply(bad_name, field_manager=FIELD_MANAGER)
            await kube.apply(repo, field_manager=FIELD_MANAGER)
        finally:
            await kube.close()
