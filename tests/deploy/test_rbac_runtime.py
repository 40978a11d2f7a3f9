"""Each service works under only its own least-privilege role, and is refused the rest.

The emulator runs with RBAC enforced. As the admin, the full overlay is installed exactly as an
installer would (CRDs, Namespace, then the rest: ServiceAccounts, ClusterRoles, bindings ...); then
every service runs with a token of its own ServiceAccount `flux-system/sluice-<component>`, and the
user's flows — Git over ssh with a secretRef into another namespace, image automation pushing to
Git, alerts to a webhook and a Receiver — must all work without a single Forbidden. Outside its
role, each ServiceAccount is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.cli.check import INSTALL_ACCESS
from libs.cli.demo import deployment
from libs.common.kube import Kube, KubeError
from libs.devservers.git import log_messages, seed_repo
from libs.devservers.ports import free_port
from libs.devservers.registry import DockerRegistry, push_image
from libs.kube_emulator import KubeEmulator
from tests.deploy.manifests import COMPONENTS, built
from tests.deploy.test_install import install
from tests.e2e.test_image_automation import Sink
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import eventually, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "flux-system"
APPS = "apps"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
IMAGE = "image.toolkit.fluxcd.io/v1beta2"
NOTIFY_V1 = "notification.toolkit.fluxcd.io/v1"
NOTIFY_BETA = "notification.toolkit.fluxcd.io/v1beta3"
WEBHOOK_TOKEN = "rbac-runtime-webhook-token"


def service_account(component: str) -> str:
    return f"system:serviceaccount:{NS}:sluice-{component}"


def settings(component: str, root: Path, receiver_port: int) -> dict[str, Any]:
    module = component.replace("-", "_")
    extra: dict[str, Any] = {}
    if module in ("source", "build"):
        extra["artifact_addr"] = "127.0.0.1:0"
    if module in ("source", "build", "image_scan"):
        extra["artifact_store"] = f"file://{root / f'artifacts-{module}'}"
    if module in ("source", "image_update"):
        extra["git_cache_dir"] = str(root / f"git-{module}")
    if module == "notify":
        extra["receiver_addr"] = f"127.0.0.1:{receiver_port}"
    return extra


@contextlib.asynccontextmanager
async def services_as_their_accounts(
    emu: KubeEmulator, nats_url: str, root: Path, receiver_port: int
) -> AsyncIterator[dict[str, str]]:
    """The six services, each with a kubeconfig holding a token of its own ServiceAccount."""
    kubeconfigs: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        for component in COMPONENTS:
            path = root / f"kubeconfig-{component}"
            kubeconfigs[component] = str(
                emu.write_kubeconfig(path, service_account=(NS, f"sluice-{component}"))
            )
            spec = importlib.import_module(f"services.{component.replace('-', '_')}.app").SPEC
            await stack.enter_async_context(
                running_service(
                    spec,
                    timeout=30,
                    nats_url=nats_url,
                    kubeconfig=kubeconfigs[component],
                    **settings(component, root, receiver_port),
                )
            )
        yield kubeconfigs


def user_objects(git_url: str, git_server: GitServer, image: str, sink_url: str) -> list[dict[str, Any]]:
    """What a user applies: Git over ssh with credentials, a Kustomization into another namespace,
    the image automation, an Alert to a generic webhook and a Receiver."""
    m = {"namespace": NS}
    ssh = git_server.ssh
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "git-ssh", **m},
            "stringData": {"identity": ssh.client_private_key, "known_hosts": ssh.known_hosts},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-token", **m},
            "stringData": {"token": WEBHOOK_TOKEN},
        },
        {
            "apiVersion": GIT,
            "kind": "GitRepository",
            "metadata": {"name": "fleet", **m},
            "spec": {
                "url": git_url,
                "interval": "1h",
                "ref": {"branch": "main"},
                "secretRef": {"name": "git-ssh"},
            },
        },
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "apps", **m},
            "spec": {
                "interval": "1h",
                "path": "./apps",
                "prune": True,
                "targetNamespace": APPS,
                "sourceRef": {"kind": "GitRepository", "name": "fleet"},
            },
        },
        {
            "apiVersion": IMAGE,
            "kind": "ImageRepository",
            "metadata": {"name": "podinfo", **m},
            "spec": {"image": image, "interval": "1h", "insecure": True},
        },
        {
            "apiVersion": IMAGE,
            "kind": "ImagePolicy",
            "metadata": {"name": "podinfo", **m},
            "spec": {"imageRepositoryRef": {"name": "podinfo"}, "policy": {"semver": {"range": ">=1.0.0"}}},
        },
        {
            "apiVersion": IMAGE,
            "kind": "ImageUpdateAutomation",
            "metadata": {"name": "fleet", **m},
            "spec": {
                "interval": "1h",
                "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                "git": {
                    "checkout": {"ref": {"branch": "main"}},
                    "commit": {
                        "author": {"email": "bot@example.com", "name": "bot"},
                        "messageTemplate": "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
                    },
                    "push": {"branch": "main"},
                },
                "update": {"path": "./apps", "strategy": "Setters"},
            },
        },
        {
            "apiVersion": NOTIFY_BETA,
            "kind": "Provider",
            "metadata": {"name": "webhook", **m},
            "spec": {"type": "generic", "address": sink_url},
        },
        {
            "apiVersion": NOTIFY_BETA,
            "kind": "Alert",
            "metadata": {"name": "everything", **m},
            "spec": {
                "providerRef": {"name": "webhook"},
                "eventSeverity": "info",
                "eventSources": [
                    {"kind": "GitRepository", "name": "*"},
                    {"kind": "Kustomization", "name": "*"},
                    {"kind": "ImagePolicy", "name": "*"},
                    {"kind": "ImageUpdateAutomation", "name": "*"},
                ],
            },
        },
        {
            "apiVersion": NOTIFY_V1,
            "kind": "Receiver",
            "metadata": {"name": "registry", **m},
            "spec": {
                "type": "generic",
                "secretRef": {"name": "webhook-token"},
                "resources": [{"apiVersion": IMAGE, "kind": "ImageRepository", "name": "podinfo"}],
            },
        },
    ]


def ready(obj: dict[str, Any] | None) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def not_ready(kube: Kube, objects: list[dict[str, Any]]) -> list[str]:
    """The objects that report a Ready condition in Flux but are not Ready=True yet."""
    pending = []
    for obj in objects:
        if obj["kind"] in ("Secret", "Provider", "Alert"):  # v1beta3 Alerts/Providers carry no status
            continue
        live = await kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], NS)
        if not ready(live):
            pending.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return pending


async def remaining(kube: Kube, objects: list[dict[str, Any]]) -> list[str]:
    left = []
    for obj in objects:
        if await kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], NS) is not None:
            left.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return left


async def image_in_cluster(kube: Kube) -> str | None:
    obj = await kube.get("apps/v1", "Deployment", "podinfo", APPS)
    return obj["spec"]["template"]["spec"]["containers"][0]["image"] if obj else None


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_every_service_works_under_only_its_own_role(
    nats_url: str, git_server: GitServer, registry: DockerRegistry, tmp_path: Path
) -> None:
    image = f"{registry.host}/rbac-podinfo"
    await asyncio.to_thread(push_image, registry.url, "rbac-podinfo", "1.0.0")
    bare, file_url = git_server.new_repo("rbac-fleet")
    await asyncio.to_thread(seed_repo, file_url, {"apps/podinfo.yaml": deployment(f"{image}:1.0.0")})
    receiver_port = free_port()
    async with KubeEmulator(rbac=True) as emu, Sink() as sink:
        admin = Kube.from_config(str(emu.write_kubeconfig(tmp_path / "admin")))
        try:
            await install(admin, built("overlays/full"))
            await admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}})
            async with (
                services_as_their_accounts(emu, nats_url, tmp_path, receiver_port) as kubeconfigs,
                denials_explained(emu),
            ):
                objects = user_objects(git_server.ssh_url(bare), git_server, image, sink.url("alerts"))
                for obj in objects:
                    await admin.create(obj)
                # source (ssh + secretRef) → build → apply into another namespace
                await eventually(
                    lambda: _equals(image_in_cluster(admin), f"{image}:1.0.0"),
                    timeout=60,
                    what="the Deployment",
                )
                await eventually(lambda: _equals(not_ready(admin, objects), []), timeout=60, what="all Ready")

                # a new tag; the Receiver (notify) asks image-scan to rescan; image-update pushes
                # over ssh; the commit reaches the cluster
                await asyncio.to_thread(push_image, registry.url, "rbac-podinfo", "1.0.1")
                receiver = await admin.get(NOTIFY_V1, "Receiver", "registry", NS)
                path = receiver["status"]["webhookPath"]  # type: ignore[index]
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(f"http://127.0.0.1:{receiver_port}{path}", json={}) as response,
                ):
                    assert response.status == 200, await response.text()
                await eventually(
                    lambda: _equals(image_in_cluster(admin), f"{image}:1.0.1"), timeout=60, what="the new tag"
                )
                assert any("1.0.1" in message for message in log_messages(bare, "main"))
                await eventually(lambda: sink.bodies("alerts"), what="an alert delivered by notify")
                await eventually(lambda: _equals(not_ready(admin, objects), []), timeout=30, what="all Ready")

                # deleting: each service removes its finalizer, apply prunes what it applied
                for obj in reversed(objects):
                    await admin.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], NS)
                await eventually(
                    lambda: _equals(remaining(admin, objects), []), timeout=30, what="all deleted"
                )
                await eventually(lambda: _equals(image_in_cluster(admin), None), timeout=30, what="the prune")

                # not one request of any service was refused
                assert [(d.user, d.message) for d in emu.denials] == []
                used = {user for user, *_ in emu.grants}
                assert {service_account(c) for c in COMPONENTS} <= used
            await assert_refused_outside_their_roles(kubeconfigs)
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def denials_explained(emu: KubeEmulator) -> AsyncIterator[None]:
    """A flow that timed out because a role lacks a permission says which request was refused."""
    try:
        yield
    except AssertionError as exc:
        if emu.denials:
            denied = "\n".join(d.message for d in emu.denials)
            raise AssertionError(f"{exc}\nrefused by RBAC:\n{denied}") from None
        raise


async def refused(call: Any) -> str:
    with pytest.raises(KubeError) as caught:
        await call
    assert caught.value.code == 403, caught.value
    return str(caught.value)


async def assert_refused_outside_their_roles(kubeconfigs: dict[str, str]) -> None:
    ks = {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": "sneaky", "namespace": NS},
        "spec": {
            "interval": "1h",
            "path": "./",
            "prune": False,
            "sourceRef": {"kind": "GitRepository", "name": "x"},
        },
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sneaky", "namespace": NS}}
    clients = {c: Kube.from_config(path) for c, path in kubeconfigs.items()}
    try:
        source, build, notify = clients["source"], clients["build"], clients["notify"]
        message = await refused(source.list_objects("apps/v1", "Deployment", APPS))
        assert f'User "{service_account("source")}" cannot list resource "deployments"' in message
        await refused(source.create(ks))
        await refused(source.list_objects("v1", "Secret", NS))  # it may get one Secret, never list them
        await refused(build.create({**ks}))
        await refused(
            build.patch_status(GIT, "GitRepository", "fleet", NS, {"ready": True}, field_manager="x")
        )
        await refused(notify.list_objects("v1", "Secret", NS))
        await refused(notify.create(secret))
        await refused(notify.get("v1", "ConfigMap", "sluice-settings", NS))
        await refused(clients["image-scan"].get(GIT, "GitRepository", "fleet", NS))
        await refused(clients["image-update"].create(secret))
        await refused(clients["image-update"].get("apps/v1", "Deployment", "podinfo", APPS))
        # apply is cluster-admin by design (it applies whatever Kustomizations hold)
        assert await clients["apply"].list_objects("v1", "Secret", NS)
    finally:
        for kube in clients.values():
            await kube.close()


async def test_check_pre_names_what_an_account_is_denied(tmp_path: Path) -> None:
    """`sluice check --pre` as ServiceAccounts: with no permissions every install permission is a
    ✗ line and the exit code is 1; with a Role granting only `create` of ConfigMaps, the ConfigMaps
    line names just the verb it lacks; the admin passes."""
    rbac = "rbac.authorization.k8s.io/v1"
    async with KubeEmulator(rbac=True) as emu:
        admin_config = emu.write_kubeconfig(tmp_path / "admin")
        admin = Kube.from_config(str(admin_config))
        try:
            await admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            for name in ("nobody", "some"):
                await admin.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": name, "namespace": NS},
                    }
                )
            rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}
            await admin.create(
                {
                    "apiVersion": rbac,
                    "kind": "Role",
                    "metadata": {"name": "cm", "namespace": NS},
                    "rules": [rule],
                }
            )
            await admin.create(
                {
                    "apiVersion": rbac,
                    "kind": "RoleBinding",
                    "metadata": {"name": "cm", "namespace": NS},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
                    "subjects": [{"kind": "ServiceAccount", "name": "some", "namespace": NS}],
                }
            )
        finally:
            await admin.close()
        nobody = emu.write_kubeconfig(tmp_path / "nobody", service_account=(NS, "nobody"))
        some = emu.write_kubeconfig(tmp_path / "some", service_account=(NS, "some"))
        code, output = await run_cli("check", "--pre", "--kubeconfig", str(nobody))
        some_code, some_output = await run_cli("check", "--pre", "--kubeconfig", str(some))
        admin_code, admin_output = await run_cli("check", "--pre", "--kubeconfig", str(admin_config))
    assert code == 1, output
    assert "✔ Kubernetes 1.32.0" in output  # /version is discovery: every authenticated user may read it
    denied = [line for line in output.splitlines() if line.startswith("✗ cannot")]
    assert len(denied) == len(INSTALL_ACCESS), output
    assert "✗ cannot create, patch customresourcedefinitions.apiextensions.k8s.io:" in output
    assert "✗ cannot create, patch secrets in namespace flux-system:" in output
    assert output.rstrip().endswith("✗ check failed: fix the ✗ lines above before installing")
    assert some_code == 1, some_output
    assert "✗ cannot patch configmaps in namespace flux-system:" in some_output
    assert admin_code == 0, admin_output
    assert "✗" not in admin_output
