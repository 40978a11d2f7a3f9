"""A Kubernetes emulator on its own thread (the CLI runs its own event loops) and a stand-in
controller that answers reconcile requests the way Flux controllers do."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from libs.common.api import meta
from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator

T = TypeVar("T")


def kube_run(kubeconfig: str, fn: Callable[[Kube], Awaitable[T]]) -> T:
    """Run `fn(kube)` on a fresh loop (tests are synchronous: the CLI uses asyncio.run)."""

    async def run() -> T:
        kube = Kube.from_config(kubeconfig)
        try:
            return await fn(kube)
        finally:
            await kube.close()

    return asyncio.run(run())


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[str]:
    with KubeEmulator.in_thread() as emu:
        path = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))

        async def setup(kube: Kube) -> None:
            for crd in crd_documents():
                await kube.apply(crd, field_manager="test")
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}
            await kube.apply(ns, field_manager="test")

        kube_run(path, setup)
        yield path


Outcome = Callable[[dict[str, Any]], dict[str, Any]]


def ready(message: str, **status: Any) -> Outcome:
    """An outcome: Ready=True with `message`, plus `status` fields."""
    return lambda obj: {**status, "conditions": [_condition(meta.CONDITION_TRUE, meta.SUCCEEDED, message)]}


def failed(message: str) -> Outcome:
    return lambda obj: {"conditions": [_condition(meta.CONDITION_FALSE, meta.FAILED, message)]}


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": meta.READY,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }


class FakeController:
    """Answers `reconcile.fluxcd.io/requestedAt` on the objects it is given, like a controller:
    writes the outcome and `status.lastHandledReconcileAt` (a thread with its own loop)."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.outcomes: dict[tuple[str, str, str], Outcome] = {}
        self.handled: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def answer(self, api_version: str, kind: str, name: str, outcome: Outcome) -> None:
        self.outcomes[(api_version, kind, name)] = outcome

    def __enter__(self) -> FakeController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        kube_run(self.kubeconfig, self._loop)

    async def _loop(self, kube: Kube) -> None:
        while not self._stop.is_set():
            for (api_version, kind, name), outcome in list(self.outcomes.items()):
                obj = await kube.get(api_version, kind, name, "flux-system")
                if obj is None or (obj.get("spec") or {}).get("suspend"):
                    continue
                requested = (obj["metadata"].get("annotations") or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)
                if requested and requested != (obj.get("status") or {}).get("lastHandledReconcileAt"):
                    status = {**outcome(obj), "lastHandledReconcileAt": requested}
                    await kube.patch_status(
                        api_version, kind, name, "flux-system", status, field_manager="fake"
                    )
                    self.handled.append(f"{kind}/{name}")
            await asyncio.sleep(0.05)


@pytest.fixture
def controller(kubeconfig: str) -> Iterator[FakeController]:
    with FakeController(kubeconfig) as c:
        yield c
