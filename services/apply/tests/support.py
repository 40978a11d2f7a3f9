"""The apply service running in-process against the Kubernetes emulator and a real nats-server.

Tests play the build service: they pack bundles (`manifests.yaml` in a tar.gz), store them in a
local artifact store served over HTTP, and publish `build.ready` / `build.failed` on the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.artifacts import LocalStore, artifact_app, pack_files, store_artifact
from libs.common.bus import Bus, Delivery
from libs.common.events import ApplyDone, BuildFailed, BuildReady, EventRecord, ObjectRef
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator
from services.apply.app import SPEC
from tests.harness.services import running_service

GV = Kustomization.api_version()
NS = "flux-system"
APPS = "apps"
SOURCE = ObjectRef(api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace=NS, name="repo")


def revision(n: int) -> str:
    return f"main@sha1:{n:040x}"


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, or fail after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def configmap(name: str, namespace: str = APPS, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data) or {"key": "value"},
    }


def deployment(
    name: str, namespace: str = APPS, *, image: str = "nginx:1", annotations: Any = None
) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": md,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def service_settings(nats_url: str, kubeconfig: str, **extra: Any) -> dict[str, Any]:
    """Settings of an apply service under test: fast health polling, and a shutdown grace that
    leaves room for watch threads to notice the stop on a loaded machine."""
    return {
        "nats_url": nats_url,
        "kubeconfig": kubeconfig,
        "health_poll_interval": 0.05,
        "shutdown_grace": 15.0,
        **extra,
    }


@dataclass
class Harness:
    kube: Kube
    bus: Bus
    store: LocalStore
    base_url: str
    nats_url: str = ""
    kubeconfig: str = ""
    events: list[EventRecord] = field(default_factory=list)
    done: list[ApplyDone] = field(default_factory=list)

    async def kustomization(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": GV,
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "interval": "1h",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
                **spec,
            },
        }
        return await self.kube.create(body)

    async def get_ks(self, name: str) -> dict[str, Any]:
        obj = await self.kube.get(GV, "Kustomization", name, NS)
        assert obj is not None
        return obj

    async def build_ready(
        self, name: str, docs: list[dict[str, Any]], rev: str, *, generation: int = 1
    ) -> BuildReady:
        text = yaml.safe_dump_all(docs, sort_keys=False)
        data = pack_files({"manifests.yaml": text.encode()})
        artifact = await store_artifact(
            self.store,
            kind="Kustomization",
            namespace=NS,
            name=name,
            data=data,
            revision=rev,
            base_url=self.base_url,
        )
        assert artifact.digest is not None
        payload = BuildReady(
            kustomization=ObjectRef(api_version=GV, kind="Kustomization", namespace=NS, name=name),
            source=SOURCE,
            revision=rev,
            generation=generation,
            digest=artifact.digest,
            url=artifact.url,
            object_count=len(docs),
        )
        await self.bus.publish(payload)
        return payload

    async def build_failed(self, name: str, rev: str, message: str, *, generation: int = 1) -> None:
        await self.bus.publish(
            BuildFailed(
                kustomization=ObjectRef(api_version=GV, kind="Kustomization", namespace=NS, name=name),
                source=SOURCE,
                revision=rev,
                generation=generation,
                reason="BuildFailed",
                message=message,
            )
        )

    async def ready(self, name: str, rev: str) -> dict[str, Any] | None:
        """The Kustomization once Ready=True at `rev` (observedGeneration current), else None."""
        obj = await self.get_ks(name)
        status = obj.get("status") or {}
        ready = conditions(obj).get("Ready", {})
        if (
            ready.get("status") == "True"
            and status.get("lastAppliedRevision") == rev
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        ):
            return obj
        return None

    async def condition(self, name: str, type_: str, reason: str) -> dict[str, Any] | None:
        obj = await self.get_ks(name)
        cond = conditions(obj).get(type_, {})
        return obj if cond.get("reason") == reason else None

    async def request_reconcile(self, name: str, stamp: str) -> None:
        await self.kube.patch(
            GV,
            "Kustomization",
            name,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
            namespace=NS,
        )


@pytest.fixture
async def harness(nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with KubeEmulator(rollout_delay=0.02) as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        for ns in (NS, APPS):
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        store = LocalStore(tmp_path / "artifacts")
        runner = web.AppRunner(artifact_app(store), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        bus = await Bus.connect(nats_url, service="test", replica_id="test")
        h = Harness(kube, bus, store, f"http://127.0.0.1:{port}", nats_url, str(kubeconfig))

        async def on_event(record: EventRecord, delivery: Delivery) -> None:
            h.events.append(record)

        async def on_done(payload: ApplyDone, delivery: Delivery) -> None:
            h.done.append(payload)

        bus.subscribe(
            "test-events", subj.family_filter(names.EVENT_RECORD, "Kustomization"), EventRecord, on_event
        )
        bus.subscribe(
            "test-apply-done", subj.family_filter(names.APPLY_DONE, "Kustomization"), ApplyDone, on_done
        )
        try:
            async with running_service(SPEC, **service_settings(nats_url, str(kubeconfig))):
                yield h
        finally:
            await bus.close(grace=1)
            await runner.cleanup()
            await kube.close()
