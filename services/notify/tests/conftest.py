"""The notify service running against a real nats-server, the Kubernetes emulator and real HTTP
sinks (small aiohttp servers recording what the service POSTs)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import Provider
from libs.common.api.notification.receiver import Receiver
from libs.common.api.source.gitrepository import GitRepository
from libs.common.bus import Bus, Delivery
from libs.common.events import EventRecord, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.devservers.ports import free_port
from libs.kube_emulator import KubeEmulator
from services.notify.app import SPEC
from tests.harness.services import RunningService, running_service

NS = "flux-system"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Sink:
    """A webhook endpoint: records every POST and answers with the statuses queued for its path
    (then 200)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        queued = self.statuses.get(request.path) or []
        status = queued.pop(0) if queued else 200
        text = self.bodies.get(request.path) or ("ok" if status < 400 else "failed")
        return web.Response(status=status, text=text)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@dataclass
class Env:
    kube: Kube
    bus: Bus
    svc: RunningService
    sink: Sink
    hook_url: str
    events: list[EventRecord] = field(default_factory=list)
    requests: list[ReconcileRequest] = field(default_factory=list)

    async def secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await self.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "data": encoded,
            }
        )

    async def create(
        self, cls: Any, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
    ) -> None:
        metadata: dict[str, Any] = {"name": name, "namespace": NS}
        if labels:
            metadata["labels"] = labels
        await self.kube.create(
            {"apiVersion": cls.api_version(), "kind": cls.KIND, "metadata": metadata, "spec": spec}
        )

    async def provider(self, name: str, **spec: Any) -> None:
        await self.create(Provider, name, spec)

    async def alert(self, name: str, provider: str, **spec: Any) -> None:
        await self.create(Alert, name, {"providerRef": {"name": provider}, **spec})

    async def receiver(self, name: str, **spec: Any) -> None:
        await self.create(Receiver, name, spec)

    async def gitrepository(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self.create(GitRepository, name, {"url": "https://example.com/x.git", "interval": "1h"}, labels)

    async def get(self, cls: Any, name: str) -> dict[str, Any]:
        obj = await self.kube.get(cls.api_version(), cls.KIND, name, NS)
        assert obj is not None
        return obj

    def records(self, name: str, reason: str | None = None) -> list[EventRecord]:
        return [e for e in self.events if e.involved_object.name == name and reason in (None, e.reason)]


@pytest.fixture
async def env(nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    sink = Sink()
    web_app = web.Application()
    web_app.router.add_post("/{tail:.*}", sink.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sink.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    port = free_port()
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        bus = await Bus.connect(nats_url, service="test-observer")
        events: list[EventRecord] = []
        requests: list[ReconcileRequest] = []

        async def on_event(payload: EventRecord, delivery: Delivery) -> None:
            events.append(payload)

        async def on_request(payload: ReconcileRequest, delivery: Delivery) -> None:
            requests.append(payload)

        bus.subscribe("test-events", subj.family_filter(names.EVENT_RECORD), EventRecord, on_event)
        bus.subscribe(
            "test-requests",
            subj.family_filter(names.RECONCILE_REQUEST, GitRepository.KIND),
            ReconcileRequest,
            on_request,
            concurrency=1,
        )
        try:
            async with running_service(
                SPEC,
                nats_url=nats_url,
                kubeconfig=str(kubeconfig),
                receiver_addr=f"127.0.0.1:{port}",
            ) as svc:
                yield Env(kube, bus, svc, sink, f"http://127.0.0.1:{port}", events, requests)
        finally:
            await bus.close(grace=1)
            await kube.close()
            await runner.cleanup()


def only(items: list[Any], what: Callable[[Any], bool]) -> list[Any]:
    return [i for i in items if what(i)]
