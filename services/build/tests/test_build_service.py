"""The build service over a real nats-server and the Kubernetes emulator.

What another service sees: `build.ready` / `build.failed` on the bus, and the bundle behind
`BuildReady.url` (a tar.gz holding manifests.yaml). The source service is played by the test: it
stores an artifact in its own store, serves it over HTTP, sets the GitRepository's
`status.artifact` and publishes `artifact.ready`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import tarfile
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp import web

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.meta import Artifact
from libs.common.artifacts import LocalStore, artifact_app, fetch_artifact, pack_dir, store_artifact
from libs.common.bus import Bus
from libs.common.events import ArtifactReady, BuildFailed, BuildReady, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.events.base import Payload
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator
from services.build.app import SPEC
from tests.harness.services import running_service

pytestmark = pytest.mark.integration

NS = "apps"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
P = TypeVar("P", bound=Payload)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${replicas:=1}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ghcr.io/acme/web:1.0.0
        env:
        - name: CLUSTER
          value: "${cluster}"
        - name: TOKEN
          value: "${token}"
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"


@dataclass
class Env:
    kube: Kube
    bus: Bus
    tmp: Path
    source_store: LocalStore
    source_url: str
    busy_port: int | None = None

    async def publish_source(
        self, name: str, files: dict[str, str], revision: str, *, record_status: bool = True
    ) -> Artifact:
        """Play source: store the tree as GitRepository `name`'s artifact, set its status, announce it."""
        tree = self.tmp / f"tree-{name}-{revision[-6:]}"
        for rel, text in files.items():
            path = tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        data = pack_dir(tree)
        artifact = await store_artifact(
            self.source_store,
            kind="GitRepository",
            namespace=NS,
            name=name,
            data=data,
            revision=revision,
            base_url=self.source_url,
        )
        if record_status:
            status = {"artifact": artifact.model_dump(by_alias=True, exclude_none=True)}
            await self.kube.patch_status(GIT, "GitRepository", name, NS, status, field_manager="test-source")
        await self.bus.publish(
            ArtifactReady(
                source=ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name=name),
                revision=revision,
                digest=artifact.digest or "",
                url=artifact.url,
                path=artifact.path,
            )
        )
        return artifact

    async def wait(
        self, event: str, model: type[P], name: str, after: int = 0, timeout: float = 20.0
    ) -> tuple[P, int]:
        subject = subj.subject(event, "Kustomization", NS, name)
        async with asyncio.timeout(timeout):
            while True:
                entry = await self.bus.last_entry(subject, model)
                if entry is not None and entry.seq > after:
                    return entry.payload, entry.seq
                await asyncio.sleep(0.05)


def git_repository(name: str) -> dict[str, Any]:
    return {
        "apiVersion": GIT,
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"url": "https://git.example.com/acme/apps.git", "interval": "1m", "ref": {"branch": "main"}},
    }


def kustomization(name: str, source: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "interval": "5m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": source},
            **spec,
        },
    }


async def read_bundle(ready: BuildReady) -> str:
    data = await fetch_artifact(ready.url, ready.digest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.getnames() == ["manifests.yaml"]
        member = tar.extractfile("manifests.yaml")
        assert member is not None
        return member.read().decode()


@pytest.fixture
async def env(nats_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    busy: socket.socket | None = None
    artifact_addr = "127.0.0.1:0"
    if getattr(request, "param", None) == "busy-port":
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        artifact_addr = f"127.0.0.1:{busy.getsockname()[1]}"
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        source_store = LocalStore(tmp_path / "source-artifacts")
        runner = web.AppRunner(artifact_app(source_store), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        bus = await Bus.connect(nats_url, service="test", replica_id="test")
        try:
            async with running_service(
                SPEC,
                nats_url=nats_url,
                kubeconfig=str(kubeconfig),
                artifact_store=f"file://{tmp_path / 'bundles'}",
                artifact_addr=artifact_addr,
            ):
                busy_port = busy.getsockname()[1] if busy is not None else None
                yield Env(kube, bus, tmp_path, source_store, f"http://127.0.0.1:{port}", busy_port)
        finally:
            if busy is not None:
                busy.close()
            await bus.close(grace=1)
            await runner.cleanup()
            await kube.close()


async def test_artifact_ready_renders_every_kustomization_of_that_source(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "vars", "namespace": NS},
            "data": {"cluster": "eu-1", "replicas": "2"},
        }
    )
    secret = base64.b64encode(b"s3cr3t-t0ken").decode()
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"token": secret},
        }
    )
    post_build = {
        "substitute": {"replicas": "3"},
        "substituteFrom": [
            {"kind": "ConfigMap", "name": "vars"},
            {"kind": "Secret", "name": "creds"},
            {"kind": "ConfigMap", "name": "absent", "optional": True},
        ],
    }
    await env.kube.create(
        kustomization(
            "web", "repo", path="./apps", targetNamespace="prod", namePrefix="p-", postBuild=post_build
        )
    )
    await env.kube.create(kustomization("other", "another-repo"))
    revision = "main@sha1:" + "1" * 40
    artifact = await env.publish_source(
        "repo", {"apps/deploy.yaml": DEPLOYMENT, "apps/svc/svc.yaml": SERVICE, "README.md": "#"}, revision
    )

    ready, _ = await env.wait(names.BUILD_READY, BuildReady, "web")
    assert ready.revision == revision
    assert ready.generation == 1
    assert ready.source_digest == artifact.digest
    assert (ready.source.kind, ready.source.namespace, ready.source.name) == ("GitRepository", NS, "repo")
    assert (ready.kustomization.namespace, ready.kustomization.name) == (NS, "web")
    assert ready.object_count == 2
    manifests = await read_bundle(ready)
    objects = list(yaml.safe_load_all(manifests))
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects] == [
        ("Service", "p-web", "prod"),
        ("Deployment", "p-web", "prod"),
    ]
    deploy = objects[1]
    assert deploy["spec"]["replicas"] == 3  # inline substitute wins over the ConfigMap
    env_vars = {e["name"]: e["value"] for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars == {"CLUSTER": "eu-1", "TOKEN": "s3cr3t-t0ken"}
    assert manifests.startswith("apiVersion: v1\nkind: Service\n")  # kustomize-style YAML
    # the Kustomization of another source was not built
    assert (
        await env.bus.last(subj.subject(names.BUILD_READY, "Kustomization", NS, "other"), BuildReady) is None
    )
    assert (
        await env.bus.last(subj.subject(names.BUILD_FAILED, "Kustomization", NS, "other"), BuildFailed)
        is None
    )


async def test_broken_yaml_fails_naming_the_file_and_line(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("web", "repo", path="apps"))
    broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   oops: [\n"
    revision = "main@sha1:" + "2" * 40
    artifact = await env.publish_source(
        "repo", {"apps/ok.yaml": SERVICE, "apps/broken.yaml": broken}, revision
    )
    failed, _ = await env.wait(names.BUILD_FAILED, BuildFailed, "web")
    assert failed.reason == "BuildFailed"
    assert failed.revision == revision and failed.source_digest == artifact.digest and failed.generation == 1
    assert "apps/broken.yaml" in failed.message and "line 5" in failed.message, failed.message


async def test_missing_variable_fails_naming_the_variable_without_leaking_secrets(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    secret = base64.b64encode(b"hunter2-very-secret").decode()
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"token": secret},
        }
    )
    post_build = {"substituteFrom": [{"kind": "Secret", "name": "creds"}]}
    await env.kube.create(kustomization("web", "repo", postBuild=post_build))
    await env.publish_source("repo", {"deploy.yaml": DEPLOYMENT}, "main@sha1:" + "3" * 40)
    failed, _ = await env.wait(names.BUILD_FAILED, BuildFailed, "web")
    assert failed.reason == "BuildFailed"
    assert 'variable not set (strict mode): "cluster"' in failed.message
    assert "Deployment/web" in failed.message
    assert "hunter2" not in failed.message


async def test_spec_change_and_requested_at_re_render(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("web", "repo", targetNamespace="one"))
    await env.publish_source("repo", {"svc.yaml": SERVICE}, "main@sha1:" + "4" * 40)
    first, seq = await env.wait(names.BUILD_READY, BuildReady, "web")
    assert "namespace: one" in await read_bundle(first)

    current = await env.kube.get(KS, "Kustomization", "web", NS)
    assert current is not None
    current["spec"]["targetNamespace"] = "two"
    updated = await env.kube.replace(current)
    generation = updated["metadata"]["generation"]
    ref = ObjectRef(api_version=KS, kind="Kustomization", namespace=NS, name="web")
    await env.bus.publish(ReconcileRequest(object=ref, reason="changed", generation=generation))
    second, seq2 = await env.wait(names.BUILD_READY, BuildReady, "web", after=seq)
    assert second.generation == generation == 2
    assert second.revision == first.revision
    assert "namespace: two" in await read_bundle(second)

    # the same inputs again: nothing new; a new requestedAt: rendered and published again
    await env.bus.publish(ReconcileRequest(object=ref, reason="interval"))
    await env.bus.publish(
        ReconcileRequest(object=ref, reason="requested", requested_at="2026-11-25T20:00:00Z")
    )
    third, seq3 = await env.wait(names.BUILD_READY, BuildReady, "web", after=seq2)
    assert third.digest == second.digest and third.generation == 2
    assert seq3 > seq2
    ready_subject = subj.subject(names.BUILD_READY, "Kustomization", NS, "web")
    info = await env.bus.js.stream_info(names.STREAM_NAME, subjects_filter=ready_subject)
    assert info.state.subjects == {ready_subject: 3}  # the interval request was a no-op


async def test_source_without_artifact_and_missing_source_fail_as_artifact_failed(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("web", "repo"))
    await env.kube.create(kustomization("orphan", "nowhere"))
    for name in ("web", "orphan"):
        ref = ObjectRef(api_version=KS, kind="Kustomization", namespace=NS, name=name)
        await env.bus.publish(ReconcileRequest(object=ref, reason="created", generation=1))
    failed, _ = await env.wait(names.BUILD_FAILED, BuildFailed, "web")
    assert failed.reason == "ArtifactFailed"
    assert failed.message == "Source artifact not found, retrying in 30s"
    orphan, _ = await env.wait(names.BUILD_FAILED, BuildFailed, "orphan")
    assert orphan.reason == "ArtifactFailed"
    assert orphan.message == f"Source 'GitRepository/{NS}/nowhere' not found"


async def test_suspended_kustomization_is_not_built(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("paused", "repo", suspend=True))
    await env.kube.create(kustomization("live", "repo"))
    await env.publish_source("repo", {"svc.yaml": SERVICE}, "main@sha1:" + "5" * 40)
    await env.wait(names.BUILD_READY, BuildReady, "live")
    assert (
        await env.bus.last(subj.subject(names.BUILD_READY, "Kustomization", NS, "paused"), BuildReady) is None
    )


async def test_requests_render_the_newest_announced_artifact_not_an_older_status(env: Env) -> None:
    # source announces an artifact before it records it in status.artifact
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("web", "repo"))
    old = "main@sha1:" + "6" * 40
    await env.publish_source("repo", {"svc.yaml": SERVICE}, old)
    first, seq = await env.wait(names.BUILD_READY, BuildReady, "web")
    assert first.revision == old
    new = "main@sha1:" + "7" * 40
    await env.publish_source(
        "repo", {"svc.yaml": SERVICE.replace("port: 80", "port: 81")}, new, record_status=False
    )
    second, seq2 = await env.wait(names.BUILD_READY, BuildReady, "web", after=seq)
    assert second.revision == new
    ref = ObjectRef(api_version=KS, kind="Kustomization", namespace=NS, name="web")
    await env.bus.publish(ReconcileRequest(object=ref, reason="requested", requested_at="now"))
    third, _ = await env.wait(names.BUILD_READY, BuildReady, "web", after=seq2)
    assert third.revision == new
    assert "port: 81" in await read_bundle(third)


async def test_missing_substitute_from_fails_then_builds_once_it_exists(env: Env) -> None:
    await env.kube.create(git_repository("repo"))
    post_build = {"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]}
    await env.kube.create(kustomization("web", "repo", postBuild=post_build))
    await env.publish_source("repo", {"deploy.yaml": DEPLOYMENT}, "main@sha1:" + "8" * 40)
    failed, seq = await env.wait(names.BUILD_FAILED, BuildFailed, "web")
    assert failed.reason == "BuildFailed"
    assert failed.message == "substitute from 'ConfigMap/vars' error: configmaps \"vars\" not found"
    data = {"cluster": "eu-1", "token": "t"}
    await env.kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vars", "namespace": NS}, "data": data}
    )
    ref = ObjectRef(api_version=KS, kind="Kustomization", namespace=NS, name="web")
    await env.bus.publish(ReconcileRequest(object=ref, reason="interval"))
    ready, ready_seq = await env.wait(names.BUILD_READY, BuildReady, "web")
    assert ready_seq > seq  # not swallowed by the failure's de-duplication
    assert "value: eu-1" in await read_bundle(ready)


@pytest.mark.parametrize("env", ["busy-port"], indirect=True)
async def test_a_busy_bundle_port_falls_back_to_a_free_one(env: Env) -> None:
    assert env.busy_port is not None
    await env.kube.create(git_repository("repo"))
    await env.kube.create(kustomization("web", "repo"))
    await env.publish_source("repo", {"svc.yaml": SERVICE}, "main@sha1:" + "9" * 40)
    ready, _ = await env.wait(names.BUILD_READY, BuildReady, "web")
    assert ready.url.startswith("http://127.0.0.1:")
    assert f":{env.busy_port}/" not in ready.url
    assert "kind: Service" in await read_bundle(ready)
