"""Git → cluster through the three services, as a user sees it.

source, build and apply run together (each exactly as its `__main__` runs it) against a real
nats-server, real git and the Kubernetes emulator. A GitRepository and a Kustomization from
Flux's docs bring a Deployment and a Service into the cluster; a pushed commit announced by a
`git.commit` event reaches the cluster without waiting for any interval; a removed manifest is
pruned; a broken commit fails the Kustomization and leaves the last good state applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from libs.common.bus import Bus
from libs.common.events import GitCommit, ObjectRef
from libs.common.kube import Kube
from libs.devservers.git import commit_files, head, seed_repo
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.source.app import SPEC as SOURCE
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import emulated_cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "flux-system"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"


def deployment(image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
"""


SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
"""


@dataclass
class Env:
    kube: Kube
    bus: Bus
    bare: Path
    url: str

    async def deployment(self) -> dict[str, Any] | None:
        return await self.kube.get("apps/v1", "Deployment", "web", "apps")

    async def image(self) -> str | None:
        obj = await self.deployment()
        return obj["spec"]["template"]["spec"]["containers"][0]["image"] if obj else None

    async def kustomization(self) -> dict[str, Any]:
        obj = await self.kube.get(KS, "Kustomization", "apps", NS)
        assert obj is not None
        return obj

    async def ready(self) -> dict[str, str]:
        status = (await self.kustomization()).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})

    async def announce(self, commit: str) -> None:
        """What image-update (or a Git webhook) publishes after a push."""
        repo = ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name="fleet")
        await self.bus.publish(
            GitCommit(repository=repo, branch="main", commit=commit, revision=f"main@sha1:{commit}")
        )


@pytest.fixture
async def env(nats_url: str, git_server: GitServer, tmp_path: Path) -> AsyncIterator[Env]:
    bare, url = git_server.new_repo("fleet")
    await asyncio.to_thread(
        seed_repo, url, {"apps/deployment.yaml": deployment("nginx:1.25.0"), "apps/service.yaml": SERVICE}
    )
    async with emulated_cluster(tmp_path, (NS, "apps")) as cluster:
        kube, kubeconfig = cluster.kube, cluster.kubeconfig
        common = {"nats_url": nats_url, "kubeconfig": kubeconfig}
        bus = await Bus.connect(nats_url, service="e2e")
        try:
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
                    BUILD,
                    **common,
                    artifact_store=f"file://{tmp_path / 'build'}",
                    artifact_addr="127.0.0.1:0",
                ),
                running_service(APPLY, **common),
            ):
                yield Env(kube, bus, bare, url)
        finally:
            await bus.close(grace=1)


async def test_commits_reach_the_cluster(env: Env) -> None:
    await env.kube.create(
        {
            "apiVersion": GIT,
            "kind": "GitRepository",
            "metadata": {"name": "fleet", "namespace": NS},
            "spec": {"url": env.url, "interval": "10m", "ref": {"branch": "main"}},
        }
    )
    await env.kube.create(
        {
            "apiVersion": KS,
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": NS},
            "spec": {
                "interval": "10m",
                "path": "./apps",
                "prune": True,
                "targetNamespace": "apps",
                "sourceRef": {"kind": "GitRepository", "name": "fleet"},
            },
        }
    )
    first = head(env.bare, "main")
    await eventually(env.deployment, timeout=60, what="the Deployment applied from Git")
    assert await env.image() == "nginx:1.25.0"
    assert await env.kube.get("v1", "Service", "web", "apps") is not None

    async def applied(revision: str) -> bool:
        status = (await env.kustomization()).get("status") or {}
        return status.get("lastAppliedRevision") == revision and (await env.ready()).get("status") == "True"

    await eventually(
        lambda: applied(f"main@sha1:{first}"), timeout=30, what="Kustomization Ready at the first commit"
    )
    status = (await env.kustomization())["status"]
    ids = {entry["id"] for entry in status["inventory"]["entries"]}
    assert {"apps_web_apps_Deployment", "apps_web__Service"} <= ids
    labels = (await env.deployment())["metadata"]["labels"]  # type: ignore[index]
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
    assert labels["kustomize.toolkit.fluxcd.io/namespace"] == NS

    # A pushed commit, announced on the bus, reaches the cluster at once (the intervals are 10m).
    second = await asyncio.to_thread(
        commit_files, env.url, {"apps/deployment.yaml": deployment("nginx:1.25.1")}, "bump web"
    )
    started = time.monotonic()
    await env.announce(second)
    await eventually(
        lambda: _is(env.image(), "nginx:1.25.1"), timeout=30, what="the new image in the cluster"
    )
    took = time.monotonic() - started
    assert took < 10, f"a commit took {took:.1f}s to reach the cluster"
    await eventually(lambda: applied(f"main@sha1:{second}"), timeout=30, what="Ready at the second commit")

    # A manifest removed from Git is pruned from the cluster.
    third = await asyncio.to_thread(
        commit_files, env.url, {}, "drop the service", delete=["apps/service.yaml"]
    )
    await env.announce(third)

    async def service_gone() -> bool:
        return await env.kube.get("v1", "Service", "web", "apps") is None

    await eventually(service_gone, timeout=30, what="the removed Service pruned")

    # A broken commit fails the Kustomization and keeps the last good state applied.
    fourth = await asyncio.to_thread(
        commit_files, env.url, {"apps/deployment.yaml": "apiVersion: apps/v1\nkind: [broken\n"}, "break it"
    )
    await env.announce(fourth)

    async def failed() -> dict[str, str] | None:
        ready = await env.ready()
        return ready if ready.get("status") == "False" else None

    ready = await eventually(failed, timeout=30, what="the Kustomization failing on the broken commit")
    assert ready["reason"] == "BuildFailed"
    assert "deployment.yaml" in ready["message"]
    assert await env.image() == "nginx:1.25.1", "the last good state stays applied"
    assert (await env.kustomization())["status"]["lastAppliedRevision"] == f"main@sha1:{third}"


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def test_two_replicas_of_each_service_apply_every_revision_once(
    nats_url: str, git_server: GitServer, tmp_path: Path
) -> None:
    bare, url = git_server.new_repo("replicated")
    await asyncio.to_thread(seed_repo, url, {"apps/deployment.yaml": deployment("nginx:1.0.0")})
    async with emulated_cluster(tmp_path, (NS, "apps")) as cluster:
        kube, kubeconfig = cluster.kube, cluster.kubeconfig
        common = {"nats_url": nats_url, "kubeconfig": kubeconfig}
        bus = await Bus.connect(nats_url, service="e2e")
        try:
            async with contextlib.AsyncExitStack() as stack:
                for n in range(2):
                    await stack.enter_async_context(
                        running_service(
                            SOURCE,
                            **common,
                            replica_id=f"source-{n}",
                            artifact_addr="127.0.0.1:0",
                            artifact_store=f"file://{tmp_path / 'source'}",
                            allow_file_urls=True,
                            git_cache_dir=str(tmp_path / f"git-cache-{n}"),
                        )
                    )
                    await stack.enter_async_context(
                        running_service(
                            BUILD,
                            **common,
                            replica_id=f"build-{n}",
                            artifact_addr="127.0.0.1:0",
                            artifact_store=f"file://{tmp_path / 'build'}",
                        )
                    )
                    await stack.enter_async_context(running_service(APPLY, **common, replica_id=f"apply-{n}"))
                env = Env(kube, bus, bare, url)
                await kube.create(
                    {
                        "apiVersion": GIT,
                        "kind": "GitRepository",
                        "metadata": {"name": "fleet", "namespace": NS},
                        "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
                    }
                )
                await kube.create(
                    {
                        "apiVersion": KS,
                        "kind": "Kustomization",
                        "metadata": {"name": "apps", "namespace": NS},
                        "spec": {
                            "interval": "10m",
                            "path": "./apps",
                            "prune": True,
                            "targetNamespace": "apps",
                            "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                        },
                    }
                )
                revisions = [f"main@sha1:{head(bare, 'main')}"]

                async def applied(revision: str) -> bool:
                    status = (await env.kustomization()).get("status") or {}
                    return status.get("lastAppliedRevision") == revision

                await eventually(lambda: applied(revisions[0]), timeout=60, what="the first revision applied")
                for n in range(1, 6):
                    sha = await asyncio.to_thread(
                        commit_files,
                        url,
                        {"apps/deployment.yaml": deployment(f"nginx:1.0.{n}")},
                        f"release {n}",
                    )
                    revisions.append(f"main@sha1:{sha}")
                    await env.announce(sha)
                    await eventually(lambda: applied(revisions[-1]), timeout=30, what=f"revision {n} applied")
                assert await env.image() == "nginx:1.0.5"
                await asyncio.sleep(1.0)  # any duplicate apply would be published by now

                done = await _apply_done_revisions(nats_url)
                if any(done.count(r) != 1 for r in revisions):
                    await _dump(nats_url)
                for revision in revisions:
                    assert done.count(revision) == 1, f"{revision} applied {done.count(revision)} times"
        finally:
            await bus.close(grace=1)


async def _apply_done_revisions(nats_url: str) -> list[str]:
    """Every `apply.done` for Kustomization flux-system/apps that reported ready, read from the stream."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            "sluice.apply.done.kustomization.flux-system.apps", stream="SLUICE"
        )
        try:
            msgs = await sub.fetch(1000, timeout=2)
        except TimeoutError:
            msgs = []
        data = [json.loads(m.data)["data"] for m in msgs]
        return [d["revision"] for d in data if d["ready"]]
    finally:
        await nc.close()


async def _dump(nats_url: str) -> None:
    """Print the stream's story (what triggered what) when the exactly-once check fails."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe("sluice.>", stream="SLUICE")
        for m in await sub.fetch(1000, timeout=2):
            if ".event." in m.subject or "deadletter" in m.subject:
                continue
            d = json.loads(m.data)
            data = d["data"]
            print(
                m.metadata.sequence.stream,
                m.subject.split(".")[1:3],
                m.headers.get("Nats-Msg-Id"),
                data.get("revision", ""),
                data.get("reason", ""),
                data.get("generation", ""),
            )
    finally:
        await nc.close()
