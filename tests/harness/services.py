"""Run a Sluice service in-process, exactly as its `__main__` would, for integration tests.

async with running_service(SPEC, nats_url=nats_url, kubeconfig=str(kubeconfig)) as svc:
    ...  # talk to it through Kubernetes and NATS, as users and other services do
    svc.url  # its /healthz, /readyz, /metrics server
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from libs.common.app import ServiceSpec, serve
from libs.common.runtime.service import EXIT_OK, ServiceRuntime


@dataclass
class RunningService:
    runtime: ServiceRuntime[Any]

    @property
    def url(self) -> str:
        return self.runtime.health.url

    @property
    def settings(self) -> Any:
        return self.runtime.settings


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def running_service(
    spec: ServiceSpec, *, timeout: float = 30.0, **settings: Any
) -> AsyncIterator[RunningService]:
    """Start `spec` with these settings (plus a free port, text logs), wait for /readyz, stop after."""
    values = {"http_addr": "127.0.0.1:0", "log_format": "text", "shutdown_grace": 5.0, **settings}
    runtime: ServiceRuntime[Any] = ServiceRuntime(spec.settings(**values))

    async def main(rt: ServiceRuntime[Any]) -> None:
        await serve(rt, spec)

    task = asyncio.create_task(runtime.run(main), name=f"service-{spec.name}")
    try:
        async with asyncio.timeout(timeout):
            while not (runtime.health.started and await _ready(runtime.health.url)):
                if task.done():
                    raise RuntimeError(f"{spec.name} stopped during startup (exit {task.result()})")
                await asyncio.sleep(0.05)
        yield RunningService(runtime)
    finally:
        if not task.done():
            runtime.request_stop("test finished")
        code = await task
        assert code == EXIT_OK, f"{spec.name} exited with {code}"
