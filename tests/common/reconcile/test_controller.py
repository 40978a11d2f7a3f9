"""The controller against the Kubernetes emulator and a real nats-server, with two replicas.

What a user sees: status conditions, observedGeneration, lastHandledReconcileAt, the finalizer,
event records on the bus — and that two replicas reconcile each change exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs.common.api import meta
from libs.common.api.crd import crd_documents
from libs.common.api.source.gitrepository import GitRepository
from libs.common.bus import Bus
from libs.common.kube import Kube
from libs.common.reconcile import Context, Controller, Reconciler, Result
from libs.kube_emulator import KubeEmulator
from tests.support import eventually

pytestmark = pytest.mark.integration

GV = GitRepository.api_version()
NS = "flux-system"


@dataclass
class Harness:
    kube: Kube
    calls: Counter[str]
    fail: set[str]
    controllers: list[Controller[GitRepository]]
    spans: InMemorySpanExporter

    async def get(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get(GV, "GitRepository", name, NS)

    async def ready(self, name: str, generation: int) -> dict[str, Any] | None:
        obj = await self.get(name)
        if not obj:
            return None
        status = obj.get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions") or []}
        ok = status.get("observedGeneration") == generation and conds.get("Ready", {}).get("status") == "True"
        return obj if ok else None


def repo(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"url": "https://example.com/repo.git", "interval": "1h", "ref": {"branch": "main"}, **spec},
    }


@pytest.fixture
async def harness(nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        calls: Counter[str] = Counter()
        fail: set[str] = set()

        async def fetch(ctx: Context[GitRepository]) -> Result | None:
            calls[ctx.obj.name] += 1
            if ctx.obj.name in fail:
                ctx.set_condition("FetchFailed", "True", "GitOperationFailed", "cannot reach the remote")
                return Result.failed("GitOperationFailed", "cannot reach the remote", after=0.3)
            ctx.remove_condition("FetchFailed")
            ctx.revision = "main@sha1:" + "a" * 40
            return None

        async def done(ctx: Context[GitRepository]) -> Result:
            return Result.ready(f"stored artifact for revision '{ctx.revision}'")

        reconciler = Reconciler(kind=GitRepository, steps=[fetch, done])
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        tracer = provider.get_tracer("test")
        buses = [
            await Bus.connect(nats_url, service="source", replica_id=f"r{i}", tracer=tracer) for i in range(2)
        ]
        kubes = [Kube.from_config(str(kubeconfig)) for _ in buses]
        controllers = [
            Controller(reconciler, k, b, service="source", record_kube_events=False)
            for k, b in zip(kubes, buses, strict=True)
        ]
        for c in controllers:
            await c.start()
        try:
            yield Harness(kube, calls, fail, controllers, spans)
        finally:
            for c in controllers:
                await c.stop()
            for b in buses:
                await b.close(grace=1)
            for k in [*kubes, kube]:
                await k.close()


async def test_two_replicas_reconcile_each_change_once(harness: Harness) -> None:
    await harness.kube.create(repo("app"))
    obj = await eventually(lambda: harness.ready("app", 1))
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conds["Ready"]["reason"] == meta.SUCCEEDED
    assert conds["Ready"]["message"] == f"stored artifact for revision 'main@sha1:{'a' * 40}'"
    assert "Reconciling" not in conds and "Stalled" not in conds
    assert meta.FINALIZER in obj["metadata"]["finalizers"]
    await asyncio.sleep(1.0)  # our own status writes must not trigger more runs
    assert harness.calls["app"] == 1

    await harness.kube.patch(GV, "GitRepository", "app", {"spec": {"ref": {"branch": "dev"}}}, namespace=NS)
    await eventually(lambda: harness.ready("app", 2))
    await asyncio.sleep(0.5)
    assert harness.calls["app"] == 2


async def test_requested_at_forces_a_run_and_is_echoed(harness: Harness) -> None:
    await harness.kube.create(repo("app"))
    await eventually(lambda: harness.ready("app", 1))
    stamp = "2026-11-25T20:00:00Z"
    await harness.kube.patch(
        GV,
        "GitRepository",
        "app",
        {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: stamp}}},
        namespace=NS,
    )

    async def handled() -> bool:
        obj = await harness.get("app")
        return bool(obj and obj["status"].get("lastHandledReconcileAt") == stamp)

    await eventually(handled)
    assert harness.calls["app"] == 2


async def test_failure_sets_conditions_retries_and_recovers(harness: Harness, nats_url: str) -> None:
    harness.fail.add("broken")
    await harness.kube.create(repo("broken"))

    async def failing() -> dict[str, Any] | None:
        obj = await harness.get("broken")
        conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
        return conds if conds.get("Ready", {}).get("status") == "False" else None

    conds = await eventually(failing)
    assert conds["Ready"]["reason"] == "GitOperationFailed"
    assert conds["Reconciling"]["reason"] == meta.PROGRESSING_WITH_RETRY
    assert conds["FetchFailed"]["status"] == "True"
    await eventually(lambda: harness.calls["broken"] >= 3)  # retried on its own, no new event needed
    harness.fail.discard("broken")
    obj = await eventually(lambda: harness.ready("broken", 1))
    assert "FetchFailed" not in {c["type"] for c in obj["status"]["conditions"]}

    # The failure and the recovery were published as Flux-style event records.
    async def published_records() -> list[dict[str, Any]] | None:
        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().pull_subscribe(
                "sluice.event.gitrepository.flux-system.broken", stream="SLUICE"
            )
            found: list[dict[str, Any]] = []
            while True:  # a fetch returns early with what is there; drain until it times out
                try:
                    found += [json.loads(m.data)["data"] for m in await sub.fetch(50, timeout=0.3)]
                except nats.errors.TimeoutError:
                    break
        finally:
            await nc.close()
        return found if found and found[-1]["severity"] == "info" else None

    records = await eventually(published_records)
    severities = [(r["severity"], r["reason"]) for r in records]
    assert ("error", "GitOperationFailed") in severities
    assert severities[-1] == ("info", meta.SUCCEEDED)
    assert records[-1]["involvedObject"] == {
        "apiVersion": GV,
        "kind": "GitRepository",
        "namespace": NS,
        "name": "broken",
        "uid": records[-1]["involvedObject"]["uid"],
    }
    assert records[-1]["metadata"]["source.toolkit.fluxcd.io/revision"] == "main@sha1:" + "a" * 40


async def test_suspended_objects_are_left_alone(harness: Harness) -> None:
    await harness.kube.create(repo("paused", suspend=True))
    await asyncio.sleep(1.0)
    assert harness.calls["paused"] == 0
    await harness.kube.patch(GV, "GitRepository", "paused", {"spec": {"suspend": False}}, namespace=NS)
    await eventually(lambda: harness.ready("paused", 2))


async def test_invalid_spec_stalls_naming_the_field(harness: Harness) -> None:
    # The CRD schema accepts it (the rule is a CEL rule there); the model rejects it.
    await harness.kube.create(repo("bad", serviceAccountName="robot"))

    async def stalled() -> dict[str, Any] | None:
        obj = await harness.get("bad")
        conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
        return conds if "Stalled" in conds else None

    conds = await eventually(stalled)
    assert conds["Ready"]["status"] == "False"
    assert conds["Stalled"]["reason"] == "InvalidSpec"
    assert "serviceAccountName" in conds["Stalled"]["message"]
    assert "flux-system/bad" in conds["Stalled"]["message"]
    assert harness.calls["bad"] == 0, "no step runs on a spec that cannot work"


async def test_deletion_runs_finalizer_and_removes_the_object(harness: Harness) -> None:
    await harness.kube.create(repo("gone"))
    await eventually(lambda: harness.ready("gone", 1))
    await harness.kube.delete(GV, "GitRepository", "gone", NS)

    async def deleted() -> bool:
        return await harness.get("gone") is None

    await eventually(deleted)


async def test_interval_reconciles_again(harness: Harness) -> None:
    await harness.kube.create(repo("ticking", interval="1s"))
    await eventually(lambda: harness.ready("ticking", 1))
    await eventually(lambda: harness.calls["ticking"] >= 3, timeout=10)


async def test_a_reconcile_is_one_span_inside_the_trace_of_its_request(harness: Harness) -> None:
    await harness.kube.create(repo("traced"))
    await eventually(lambda: harness.ready("traced", 1))

    def reconcile_span() -> Any:
        return next(
            (
                s
                for s in harness.spans.get_finished_spans()
                if s.name == "reconcile GitRepository" and s.attributes.get("sluice.name") == "traced"
            ),
            None,
        )

    run = await eventually(reconcile_span)
    spans = harness.spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    parent = by_id[run.parent.span_id]
    assert parent.name == "reconcile.request process", "the run is a child of the consumed request"
    assert run.attributes["sluice.result"] == "ready"
    published = [
        s for s in spans if s.name == "event publish" and s.parent and s.parent.span_id == run.context.span_id
    ]
    assert published, "the event the run emitted is published inside the run's span"
    assert {s.context.trace_id for s in (run, parent, *published)} == {run.context.trace_id}
