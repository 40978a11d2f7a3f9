"""`sluice tree kustomization NAME`: the inventory drawn like `flux tree`, nested Kustomizations
expanded, a listed Kustomization that no longer exists shown without children, `--compact` and
`-o json|yaml` as data.

The inventories are written through the status subresource of the emulator the way the apply
service writes them (the input of a read-only command); the e2e test at the end reads one the
real source, build and apply services wrote."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.cli.main import main
from libs.common.kube import Kube
from libs.devservers.git import seed_repo
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.source.app import SPEC as SOURCE
from tests.cli.conftest import kube_run
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import emulated_cluster, eventually

pytestmark = pytest.mark.integration

KS = "kustomize.toolkit.fluxcd.io/v1"
GIT = "source.toolkit.fluxcd.io/v1"
NS = "flux-system"


def kustomization(name: str, path: str = "./") -> dict[str, Any]:
    return {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "interval": "10m",
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }


async def with_inventory(kube: Kube, name: str, ids: list[str]) -> None:
    await kube.create(kustomization(name), field_manager="test")
    inventory = {"entries": [{"id": i, "v": "v1"} for i in ids]}
    await kube.patch_status(KS, "Kustomization", name, NS, {"inventory": inventory}, field_manager="test")


ROOT = [
    "_alerts.notification.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition",
    "_flux-system__Namespace",
    "flux-system_source-controller_apps_Deployment",
    "flux-system_apps_kustomize.toolkit.fluxcd.io_Kustomization",
    "flux-system_gone_kustomize.toolkit.fluxcd.io_Kustomization",
]
APPS = [
    "apps_podinfo_apps_Deployment",
    "apps_podinfo__Service",
    "flux-system_infra_kustomize.toolkit.fluxcd.io_Kustomization",
    # an inventory that lists an ancestor is drawn once, not followed round the cycle
    "flux-system_flux-system_kustomize.toolkit.fluxcd.io_Kustomization",
]
INFRA = [
    "flux-system_podinfo_source.toolkit.fluxcd.io_HelmRepository",
    "_cert-manager__Namespace",
    # Flux writes a colon in an RBAC name as a double underscore
    "_system__sluice-reader_rbac.authorization.k8s.io_ClusterRole",
]


@pytest.fixture
def fleet(kubeconfig: str) -> str:
    async def setup(kube: Kube) -> None:
        await with_inventory(kube, "flux-system", ROOT)
        await with_inventory(kube, "apps", APPS)
        await with_inventory(kube, "infra", INFRA)
        await kube.create(kustomization("empty"), field_manager="test")

    kube_run(kubeconfig, setup)
    return kubeconfig


def tree(kubeconfig: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["tree", "kustomization", *args, "--kubeconfig", kubeconfig])
    return code, capsys.readouterr().out


def test_tree_expands_nested_kustomizations(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = tree(fleet, capsys, "flux-system")
    assert code == 0, out
    assert out == (
        "Kustomization/flux-system/flux-system\n"
        "├── CustomResourceDefinition/alerts.notification.toolkit.fluxcd.io\n"
        "├── Namespace/flux-system\n"
        "├── Deployment/flux-system/source-controller\n"
        "├── Kustomization/flux-system/apps\n"
        "│   ├── Deployment/apps/podinfo\n"
        "│   ├── Service/apps/podinfo\n"
        "│   ├── Kustomization/flux-system/infra\n"
        "│   │   ├── HelmRepository/flux-system/podinfo\n"
        "│   │   ├── Namespace/cert-manager\n"
        "│   │   └── ClusterRole/system:sluice-reader\n"
        "│   └── Kustomization/flux-system/flux-system\n"
        "└── Kustomization/flux-system/gone\n"
    )


def test_compact_keeps_only_flux_objects(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = tree(fleet, capsys, "flux-system", "--compact")
    assert code == 0, out
    assert out == (
        "Kustomization/flux-system/flux-system\n"
        "├── Kustomization/flux-system/apps\n"
        "│   ├── Kustomization/flux-system/infra\n"
        "│   │   └── HelmRepository/flux-system/podinfo\n"
        "│   └── Kustomization/flux-system/flux-system\n"
        "└── Kustomization/flux-system/gone\n"
    )


def test_json_and_yaml_are_the_same_tree_as_data(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = tree(fleet, capsys, "apps", "-o", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["resource"] == {
        "Namespace": "flux-system",
        "Name": "apps",
        "GroupKind": {"Group": "kustomize.toolkit.fluxcd.io", "Kind": "Kustomization"},
    }
    children = doc["resources"]
    assert [c["resource"]["Name"] for c in children] == ["podinfo", "podinfo", "infra", "flux-system"]
    assert children[1]["resource"]["GroupKind"] == {"Group": "", "Kind": "Service"}
    assert "resources" not in children[0]  # leaves carry no empty list, like flux's omitempty
    assert [c["resource"]["Name"] for c in children[2]["resources"]] == [
        "podinfo",
        "cert-manager",
        "system:sluice-reader",
    ]

    code, out = tree(fleet, capsys, "apps", "-o", "yaml")
    assert code == 0, out
    assert yaml.safe_load(out) == doc


def test_a_kustomization_without_inventory_is_a_single_line(
    fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = tree(fleet, capsys, "empty")
    assert (code, out) == (0, "Kustomization/flux-system/empty\n")


def test_a_missing_kustomization_says_how_to_find_one(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = tree(fleet, capsys, "nope")
    assert code == 1
    assert out == (
        "✗ Kustomization flux-system/nope not found: list them with `sluice get kustomizations -A`\n"
    )


def test_the_short_kind_and_namespace_flag(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tree", "ks", "infra", "-n", NS, "--kubeconfig", fleet])
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == "Kustomization/flux-system/infra"
    code = main(["tree", "ks", "infra", "-n", "elsewhere", "--kubeconfig", fleet])
    assert code == 1
    assert "Kustomization elsewhere/infra not found" in capsys.readouterr().out


FLEET_KUSTOMIZATION = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: fleet
"""
SETTINGS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: flux-system\n"
WEB = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.25.0
"""


@pytest.mark.e2e
async def test_tree_of_what_the_apply_service_applied(
    nats_url: str, git_server: GitServer, tmp_path: Path
) -> None:
    """A root Kustomization applies a ConfigMap and a second Kustomization, which applies a
    Deployment: the tree is read from the inventories source, build and apply wrote."""
    _bare, url = git_server.new_repo("tree-fleet")
    files = {"infra/settings.yaml": SETTINGS, "infra/apps.yaml": FLEET_KUSTOMIZATION, "apps/web.yaml": WEB}
    await asyncio.to_thread(seed_repo, url, files)
    async with emulated_cluster(tmp_path, (NS, "apps")) as cluster:
        common = {"nats_url": nats_url, "kubeconfig": cluster.kubeconfig}
        async with (
            running_service(
                SOURCE,
                **common,
                artifact_store=f"file://{tmp_path / 'source'}",
                artifact_addr="127.0.0.1:0",
                git_cache_dir=str(tmp_path / "git-cache"),
                allow_file_urls=True,
            ),
            running_service(
                BUILD, **common, artifact_store=f"file://{tmp_path / 'build'}", artifact_addr="127.0.0.1:0"
            ),
            running_service(APPLY, **common),
        ):
            git = {"url": url, "interval": "10m", "ref": {"branch": "main"}}
            await cluster.kube.create(
                {
                    "apiVersion": GIT,
                    "kind": "GitRepository",
                    "metadata": {"name": "fleet", "namespace": NS},
                    "spec": git,
                }
            )
            root = kustomization("fleet", "./infra")
            root["spec"]["sourceRef"]["name"] = "fleet"
            await cluster.kube.create(root)

            async def inventory(name: str) -> list[str]:
                obj = await cluster.kube.get(KS, "Kustomization", name, NS)
                entries = ((obj or {}).get("status") or {}).get("inventory", {}).get("entries") or []
                return [entry["id"] for entry in entries]

            await eventually(lambda: inventory("apps"), timeout=60, what="the nested Kustomization applied")

            code, out = await asyncio.to_thread(cli_tree, cluster.kubeconfig, "fleet")

    assert code == 0, out
    assert out == (
        "Kustomization/flux-system/fleet\n"
        "├── ConfigMap/flux-system/settings\n"
        "└── Kustomization/flux-system/apps\n"
        "    └── Deployment/apps/web\n"
    )


def cli_tree(kubeconfig: str, *args: str) -> tuple[int, str]:
    """The command in a thread of this process with its output captured (it runs its own loop)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["tree", "kustomization", *args, "--kubeconfig", kubeconfig])
    return code, buffer.getvalue()
