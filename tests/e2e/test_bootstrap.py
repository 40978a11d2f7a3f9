"""`sluice bootstrap git` as a user runs it: over ssh to a real sshd into an empty bare repository,
against an empty emulated cluster (no CRDs: the bootstrap installs them), through the CLI only.

The emulator has no kubelet, so a stand-in plays one (tests/e2e/kubelet.py) from what the cluster
holds: the StatefulSet `sluice-nats` becomes a real nats-server with the installed nats.conf and the
passwords of the installed Secret, each Deployment `sluice-<component>` that service in process (as
its `__main__` would run in the pod) with its container's env, so it logs in as its own NATS user.
Only addresses, directories and the kubeconfig are made local. Everything else — the install, the
commits, the cluster reconciling itself from Git, a user's commit reaching the cluster, a second
bootstrap changing nothing — is observed from outside: the CLI's output, the bare repository, the
cluster, and the nats-server (who is connected, and that nobody was refused anything).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.common.bus import Bus
from libs.common.kube import Kube
from libs.devservers.git import commit_files, head, log_messages, show_file
from libs.devservers.nats import NatsServer
from libs.kube_emulator import KubeEmulator
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.notify.app import SPEC as NOTIFY
from services.source.app import SPEC as SOURCE
from tests.e2e.kubelet import Kubelet, PodConfigError, container_env
from tests.harness.git_fixtures import GitServer
from tests.support import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "flux-system"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
DEFAULT_COMPONENTS = ("source", "build", "apply", "notify")

PODINFO = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
        - name: podinfo
          image: ghcr.io/stefanprodan/podinfo:6.7.0
"""


@dataclass
class Env:
    kube: Kube
    kubeconfig: str
    bare: Path
    url: str
    key: Path
    kubelet: Kubelet
    user_git_env: dict[str, str]

    async def sluice(self, *argv: str, timeout: float = 120.0) -> tuple[int, str]:
        """The CLI in its own process, as a user runs it; a pod crashing meanwhile fails the test at
        once (the CLI would only wait out its --timeout for components that never run)."""
        cli = asyncio.ensure_future(run_cli("--kubeconfig", self.kubeconfig, *argv, timeout=timeout))
        crash = asyncio.ensure_future(self.kubelet.crash.wait())
        try:
            await asyncio.wait({cli, crash}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (crash, cli):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # run_cli kills the process it started
        assert not self.kubelet.crashed, f"a pod crashed: {self.kubelet.crashed}"
        return cli.result()

    async def bootstrap(self) -> tuple[int, str]:
        return await self.sluice(
            "bootstrap", "git", "--url", self.url, "--branch", "main", "--path", "clusters/dev",
            "--private-key-file", str(self.key), "--silent", "--timeout", "2m",
        )  # fmt: skip

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = NS) -> dict[str, Any]:
        obj = await self.kube.get(api_version, kind, name, namespace)
        assert obj is not None, f"{kind} {namespace}/{name} not found"
        return obj

    @property
    def nats(self) -> NatsServer:
        assert self.kubelet.nats is not None, f"sluice-nats never started: {self.kubelet.waiting}"
        return self.kubelet.nats

    def nats_refusals(self) -> list[str]:
        """Every permission violation and failed login in the nats-server's log so far."""
        log = (self.nats.store_dir / "nats-server.log").read_text(errors="replace")
        return [line for line in log.splitlines() if " Violation - " in line or "Authorization Error" in line]

    async def nats_connections(self) -> set[tuple[str, str]]:
        """(connection name, authenticated user) of every client, from the server's monitor."""
        url = f"{self.nats.monitor_url}/connz?auth=true&limit=1024"

        def fetch() -> dict[str, Any]:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.load(response))

        connz = await asyncio.to_thread(fetch)
        return {(c.get("name", ""), c.get("authorized_user", "")) for c in connz.get("connections") or []}

    async def nats_login(self, user: str, password: str) -> None:
        """Connect as `user` (raising ConnectionError when refused), then leave."""
        bus = await Bus.connect(
            self.nats.url, service="test", user=user, password=password, connect_timeout=1
        )
        await bus.close(grace=1)


@pytest.fixture
async def env(git_server: GitServer, tmp_path: Path) -> AsyncIterator[Env]:
    bare, _ = git_server.new_repo("bootstrap-fleet")
    async with KubeEmulator() as emu:
        kubeconfig = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
        kube = Kube.from_config(kubeconfig)
        specs = {
            "sluice-source": SOURCE,
            "sluice-build": BUILD,
            "sluice-apply": APPLY,
            "sluice-notify": NOTIFY,
        }
        kubelet = Kubelet(kube, kubeconfig, tmp_path / "kubelet", specs)
        task = asyncio.create_task(kubelet.run(), name="kubelet")
        try:
            yield Env(
                kube,
                kubeconfig,
                bare,
                git_server.ssh_url(bare),
                git_server.ssh.client_key_path,
                kubelet,
                git_server.ssh.git_env(),
            )
        finally:
            kubelet.stop()
            await task
            await kube.close()


def lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def test_bootstrap_over_ssh_makes_the_cluster_manage_itself(env: Env) -> None:
    started = time.monotonic()
    rc, out = await env.bootstrap()
    took = time.monotonic() - started
    assert rc == 0, f"{out}\nstand-in kubelet waiting on: {env.kubelet.waiting}"
    sha = await asyncio.to_thread(head, env.bare, "main")
    printed = lines(out)
    expected_in_order = [
        f'► cloning branch "main" from Git repository "{env.url}"',
        "✔ cloned repository",
        "► generating component manifests",
        "✔ generated component manifests",
        '✔ committed component manifests to "main"',
        f'► pushing component manifests to "{env.url}"',
        '► installing components in "flux-system" namespace',
        "✔ installed components",
        "✔ reconciled components",
        '► determining if source secret "flux-system/flux-system" exists',
        '► applying source secret "flux-system/flux-system"',
        "✔ reconciled source secret",
        "► generating sync manifests",
        "✔ generated sync manifests",
        f'✔ committed sync manifests to "main" ("{sha}")',
        f'► pushing sync manifests to "{env.url}"',
        "► applying sync manifests",
        "✔ reconciled sync configuration",
        '◎ waiting for GitRepository "flux-system/flux-system" to be reconciled',
        "✔ GitRepository reconciled successfully",
        '◎ waiting for Kustomization "flux-system/flux-system" to be reconciled',
        "✔ Kustomization reconciled successfully",
        "► confirming components are healthy",
        "✔ all components are healthy",
    ]
    position = 0
    for want in expected_in_order:
        found = next((i for i in range(position, len(printed)) if printed[i].startswith(want)), None)
        assert found is not None, f"{want!r} missing (or out of order) in:\n{out}"
        position = found + 1
    private_key = env.key.read_text()
    assert private_key.strip().splitlines()[1] not in out, "the private key is never printed"

    # The repository: Flux's layout, two commits with Flux's messages, no key material.
    assert await asyncio.to_thread(log_messages, env.bare, "main") == [
        "Add Sluice sync manifests",
        "Add Sluice v0.1.0 component manifests",
    ]
    base = "clusters/dev/flux-system"
    kustomization = await asyncio.to_thread(show_file, env.bare, f"{base}/kustomization.yaml")
    assert yaml.safe_load(kustomization)["resources"] == ["gotk-components.yaml", "gotk-sync.yaml"]
    components = await asyncio.to_thread(show_file, env.bare, f"{base}/gotk-components.yaml")
    sync = list(yaml.safe_load_all(await asyncio.to_thread(show_file, env.bare, f"{base}/gotk-sync.yaml")))
    assert [d["kind"] for d in sync] == ["GitRepository", "Kustomization"]
    assert sync[0]["spec"] == {
        "interval": "1m0s",
        "ref": {"branch": "main"},
        "secretRef": {"name": "flux-system"},
        "url": env.url,
    }
    assert sync[1]["spec"]["path"] == "./clusters/dev"
    assert "PRIVATE KEY" not in components

    # The cluster follows the repository, and Sluice's own Deployments are in the flux-system
    # Kustomization's inventory: applied by the cluster from Git, so an upgrade is a commit.
    revision = f"main@sha1:{sha}"
    repo = await env.get(GIT, "GitRepository", "flux-system")
    assert ready(repo)["status"] == "True" and repo["status"]["artifact"]["revision"] == revision
    ks = await env.get(KS, "Kustomization", "flux-system")
    assert ready(ks)["status"] == "True" and ks["status"]["lastAppliedRevision"] == revision
    inventory = {e["id"] for e in ks["status"]["inventory"]["entries"]}
    for component in DEFAULT_COMPONENTS:
        assert f"flux-system_sluice-{component}_apps_Deployment" in inventory
    assert "flux-system_flux-system_source.toolkit.fluxcd.io_GitRepository" in inventory
    assert sorted(env.kubelet.started) == sorted(f"sluice-{c}" for c in DEFAULT_COMPONENTS)

    # The source Secret: the deploy key, its public half and the scanned host key.
    secret = decoded(await env.get("v1", "Secret", "flux-system"))
    assert secret["identity"] == private_key
    assert secret["known_hosts"].strip().splitlines()
    # The NATS passwords the installer generated survive the cluster applying the placeholders.
    placeholders = next(
        d
        for d in yaml.safe_load_all(components)
        if d and d["kind"] == "Secret" and d["metadata"]["name"] == "sluice-nats-users"
    )
    nats_users = decoded(await env.get("v1", "Secret", "sluice-nats-users"))
    assert set(nats_users) >= set(DEFAULT_COMPONENTS)
    placeholder_values = {**decoded(placeholders), **(placeholders.get("stringData") or {})}
    assert all(nats_users[k] != placeholder_values.get(k) for k in nats_users)
    # Those passwords are what the system runs on: the stand-in kubelet started nats-server with the
    # StatefulSet's env (secretKeyRef → this Secret) and nats.conf from its ConfigMap, and each
    # service with its Deployment's env; every service is connected as its own user.
    for component in DEFAULT_COMPONENTS:
        settings = env.kubelet.pods[f"sluice-{component}"].settings
        assert settings.nats_user == component
        assert settings.nats_password.get_secret_value() == nats_users[component]
    assert await env.nats_connections() == {(f"sluice-{c}", c) for c in DEFAULT_COMPONENTS}

    # A user pushes an app with plain git; `sluice reconcile --with-source` brings it in.
    app_sha = await asyncio.to_thread(
        commit_files,
        env.url,
        {"clusters/dev/apps/podinfo.yaml": PODINFO},
        "Add podinfo",
        env=env.user_git_env,
    )
    rc, reconciled = await env.sluice(
        "reconcile", "kustomization", "flux-system", "--with-source", "--timeout", "1m"
    )
    assert rc == 0, reconciled
    assert f"✔ applied revision main@sha1:{app_sha}" in reconciled
    assert decoded(await env.get("v1", "Secret", "sluice-nats-users")) == nats_users, (
        "re-applied, not overwritten"
    )
    podinfo = await env.get("apps/v1", "Deployment", "podinfo", "default")
    assert (
        podinfo["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.7.0"
    )

    # Bootstrapping again changes nothing: no commit, the same Secret, the same specs.
    before = {
        "secret": await env.get("v1", "Secret", "flux-system"),
        "repo": await env.get(GIT, "GitRepository", "flux-system"),
        "ks": await env.get(KS, "Kustomization", "flux-system"),
        "nats": await env.get("v1", "Secret", "sluice-nats-users"),
    }
    generations = {
        c: (await env.get("apps/v1", "Deployment", f"sluice-{c}"))["metadata"]["generation"]
        for c in DEFAULT_COMPONENTS
    }
    rc, again = await env.bootstrap()
    assert rc == 0, again
    assert "✔ component manifests are up to date" in again
    assert "✔ sync manifests are up to date" in again
    assert "✔ source secret up to date" in again
    assert "✔ all components are healthy" in again
    assert "committed" not in again and "pushing" not in again
    assert await asyncio.to_thread(head, env.bare, "main") == app_sha
    after_secret = await env.get("v1", "Secret", "flux-system")
    assert after_secret["metadata"]["resourceVersion"] == before["secret"]["metadata"]["resourceVersion"]
    for key, kind, api in (("repo", "GitRepository", GIT), ("ks", "Kustomization", KS)):
        now = await env.get(api, kind, "flux-system")
        assert now["metadata"]["generation"] == before[key]["metadata"]["generation"], kind
    assert decoded(await env.get("v1", "Secret", "sluice-nats-users")) == decoded(before["nats"])
    for component, generation in generations.items():
        now = await env.get("apps/v1", "Deployment", f"sluice-{component}")
        assert now["metadata"]["generation"] == generation, f"sluice-{component} re-rolled"
    print(f"bootstrap took {took:.1f}s")

    # Sluice's own manifests are the cluster's from now on: changing them is a commit.
    assert (await env.get("apps/v1", "Deployment", "sluice-notify"))["spec"]["replicas"] != 2
    upgraded = "\n".join(_with_replicas(components, "sluice-notify", 2))
    await asyncio.to_thread(
        commit_files,
        env.url,
        {f"{base}/gotk-components.yaml": upgraded},
        "Scale notify",
        env=env.user_git_env,
    )
    rc, reconciled = await env.sluice("reconcile", "ks", "flux-system", "--with-source", "--timeout", "1m")
    assert rc == 0, reconciled
    notify = await env.get("apps/v1", "Deployment", "sluice-notify")
    assert notify["spec"]["replicas"] == 2

    # All along, no service was refused a subject or a login; and the server takes the installer's
    # password, not the placeholder shipped in deploy/k8s/nats/users.yaml.
    assert env.nats_refusals() == []
    await env.nats_login("cli", nats_users["cli"])
    with pytest.raises(ConnectionError):
        await env.nats_login("cli", placeholder_values["cli"])


def _with_replicas(manifests: str, deployment: str, replicas: int) -> list[str]:
    """The multi-document YAML with one Deployment's replicas changed, as a user would edit it."""
    docs = []
    for doc in yaml.safe_load_all(manifests):
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == deployment:
            doc["spec"]["replicas"] = replicas
        if doc:
            docs.append("---\n" + yaml.safe_dump(doc, sort_keys=False))
    return docs


async def test_a_broken_manifest_under_the_path_fails_the_bootstrap_with_the_reason(env: Env) -> None:
    """The repository already holds a cluster directory with a broken manifest: the bootstrap
    says so as soon as the cluster tried the pushed commit, instead of waiting out --timeout; once
    a fix is pushed, bootstrapping again succeeds without new commits."""
    broken = "apiVersion: v1\nkind: [ConfigMap\n"
    await asyncio.to_thread(
        commit_files,
        env.url,
        {"clusters/dev/apps/broken.yaml": broken},
        "Add a broken app",
        env=env.user_git_env,
    )
    started = time.monotonic()
    rc, out = await env.bootstrap()
    assert rc == 1, out
    assert time.monotonic() - started < 60, "a build failure ends the wait at once"
    assert "✔ GitRepository reconciled successfully" in out
    assert "cannot build main@sha1:" in out and "broken.yaml" in out
    assert "fix the manifests under --path" in out

    fixed = await asyncio.to_thread(
        commit_files,
        env.url,
        {},
        "Remove the broken app",
        delete=["clusters/dev/apps/broken.yaml"],
        env=env.user_git_env,
    )
    rc, out = await env.bootstrap()
    assert rc == 0, out
    assert "✔ component manifests are up to date" in out and "✔ sync manifests are up to date" in out
    assert await asyncio.to_thread(head, env.bare, "main") == fixed
    ks = await env.get(KS, "Kustomization", "flux-system")
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{fixed}"
    assert env.nats_refusals() == []


async def test_the_stand_in_kubelet_resolves_a_containers_env_as_a_kubelet_does(tmp_path: Path) -> None:
    """The subset of the kubelet's env resolution the stand-in relies on: envFrom in order with
    its prefix, then env winning; Secret and ConfigMap keys; optional sources skipped; a missing
    required one makes the pod wait instead of starting without it."""
    async with KubeEmulator() as emu:
        kube = Kube.from_config(str(emu.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            await kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": "default"},
                    "data": {"A": "from-configmap", "B": "from-configmap"},
                }
            )
            await kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "users", "namespace": "default"},
                    "stringData": {"source": "s3cret", "B": "from-secret"},
                }
            )
            container = {
                "envFrom": [
                    {"configMapRef": {"name": "settings"}},
                    {"secretRef": {"name": "users"}, "prefix": "X_"},
                    {"secretRef": {"name": "absent", "optional": True}},
                ],
                "env": [
                    {"name": "B", "value": "literal"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "users", "key": "source"}}},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "A"}}},
                    {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "no", "optional": True}}},
                ],
            }  # fmt: skip
            assert await container_env(kube, "default", container) == {
                "A": "from-configmap",
                "B": "literal",
                "X_source": "s3cret",
                "X_B": "from-secret",
                "PW": "s3cret",
                "C": "from-configmap",
            }
            missing_key = {
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "users", "key": "apply"}}}]
            }
            with pytest.raises(PodConfigError, match="key 'apply' not in Secret users"):
                await container_env(kube, "default", missing_key)
            with pytest.raises(PodConfigError, match="ConfigMap default/later not found"):
                await container_env(kube, "default", {"envFrom": [{"configMapRef": {"name": "later"}}]})
        finally:
            await kube.close()
