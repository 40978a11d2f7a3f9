"""The shell every Sluice service runs in: runtime + bus + Kubernetes + controllers.

A service declares a `ServiceSpec` in `services/<name>/app.py` — its settings class, the
reconcilers of the kinds it owns, and an optional `setup` hook for its other consumers
(artifact.ready, image.tag …) and HTTP endpoints — and its `__main__` is `run(SPEC)`. Tests run
the same spec in-process with `serve()` (see tests/harness/services.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from aiohttp import web

from libs.common.bus import Bus
from libs.common.kube import Kube
from libs.common.reconcile import Controller, Reconciler
from libs.common.runtime.service import EXIT_OK, ServiceRuntime, run_service
from libs.common.runtime.settings import Settings, parse_host_port

S = TypeVar("S", bound=Settings)
T = TypeVar("T")


@dataclass
class App:
    """What a running service holds; handed to its `setup` hook."""

    name: str
    runtime: ServiceRuntime[Any]
    bus: Bus
    kube: Kube
    controllers: list[Controller[Any]] = field(default_factory=list)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _shared: dict[Callable[[App], Any], Any] = field(default_factory=dict)

    @property
    def settings(self) -> Any:
        return self.runtime.settings

    def shared(self, factory: Callable[[App], T]) -> T:
        """The one instance `factory` builds for this app, shared by its reconcilers and setup hook
        (a service's Git cache, its artifact store …)."""
        if factory not in self._shared:
            self._shared[factory] = factory(self)
        return cast(T, self._shared[factory])

    async def serve_http(self, web_app: web.Application, addr: str) -> str:
        """Serve an extra HTTP application (artifacts, webhooks) on `addr` until the service stops."""
        host, port = parse_host_port(addr)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self.cleanups.append(runner.cleanup)
        bound = runner.addresses[0][1] if runner.addresses else port
        return f"http://{host}:{bound}"


Setup = Callable[[App], Awaitable[None]]


@dataclass(frozen=True)
class ServiceSpec:
    """Everything that makes a service: its name, settings, owned kinds and extra wiring."""

    name: str
    settings: type[Settings]
    reconcilers: Callable[[App], Sequence[Reconciler[Any]]] = lambda app: ()
    """The reconcilers of the kinds the service owns; built once the app is connected, so their
    steps can use `app.bus`, `app.kube` and `app.settings`."""
    setup: Setup | None = None


async def serve(runtime: ServiceRuntime[Any], spec: ServiceSpec) -> None:
    """Connect, start one controller per owned kind (and the setup hook), run until stopped, drain."""
    settings = runtime.settings
    name, setup = spec.name, spec.setup
    started = False

    async def startup_done() -> bool:
        return started

    # Registered before anything else, so /readyz is never vacuously ready while connecting.
    runtime.add_check("started", startup_done)
    kube = Kube.from_config(settings.kubeconfig or None)
    bus = await Bus.connect(
        settings.nats_url,
        service=name,
        user=settings.nats_user or None,
        password=settings.nats_password.get_secret_value() or None,
        replica_id=settings.replica_id,
        stream=settings.stream,
        metrics=runtime.metrics,
        tracer=runtime.tracing.tracer,
    )

    async def bus_ready() -> bool:
        return bus.ready()

    runtime.add_check("nats", bus_ready)
    runtime.add_check("kubernetes", kube.ping)
    app = App(name, runtime, bus, kube)
    reconcilers = spec.reconcilers(app)
    try:
        for reconciler in reconcilers:
            controller: Controller[Any] = Controller(
                reconciler,
                kube,
                bus,
                service=name,
                namespace=settings.watch_namespace or None,
                concurrency=settings.concurrency,
                jitter=settings.interval_jitter,
                observe=runtime.metrics.observe_reconcile,
                objects_gauge=runtime.metrics.set_objects,
            )
            await controller.start()
            app.controllers.append(controller)
        if setup is not None:
            await setup(app)
        started = True
        runtime.log.info("ready", extra={"kinds": [r.kind.KIND for r in reconcilers]})
        await runtime.stopping.wait()
    finally:
        for controller in app.controllers:
            await controller.stop()
        for cleanup in reversed(app.cleanups):
            with contextlib.suppress(Exception):
                await cleanup()
        await bus.close(grace=runtime.grace_remaining() or 5.0)
        with contextlib.suppress(Exception):
            await kube.close()


@dataclass
class InProcess:
    """A service started with `in_process`: its runtime (settings, health URL, metrics)."""

    runtime: ServiceRuntime[Any]

    @property
    def url(self) -> str:
        return self.runtime.health.url

    @property
    def settings(self) -> Any:
        return self.runtime.settings


@contextlib.asynccontextmanager
async def in_process(
    spec: ServiceSpec, *, timeout: float = 30.0, **settings: Any
) -> AsyncIterator[InProcess]:
    """Run `spec` on the current event loop exactly as its `__main__` does (tests, benchmarks).

    Settings default to a free health port and text logs; the service is stopped, gracefully, on exit.
    """
    values = {"http_addr": "127.0.0.1:0", "log_format": "text", "shutdown_grace": 15.0, **settings}
    runtime: ServiceRuntime[Any] = ServiceRuntime(spec.settings(**values))

    async def main(rt: ServiceRuntime[Any]) -> None:
        await serve(rt, spec)

    task = asyncio.create_task(runtime.run(main), name=f"service-{spec.name}")
    try:
        async with asyncio.timeout(timeout):
            while not (runtime.health.started and await _all_ready(runtime)):
                if task.done():
                    raise RuntimeError(f"{spec.name} stopped during startup (exit {task.result()})")
                await asyncio.sleep(0.05)
        yield InProcess(runtime)
    finally:
        if not task.done():
            runtime.request_stop("in-process run finished")
        code = await task
        if code != EXIT_OK:
            raise RuntimeError(f"{spec.name} exited with status {code}")


async def _all_ready(runtime: ServiceRuntime[Any]) -> bool:
    results = await runtime.health.run_checks()
    return bool(results) and all(r.ok for r in results)


def run(spec: ServiceSpec) -> None:
    """The body of a service's `main()`: read settings from the environment and serve until SIGTERM."""

    async def main(runtime: ServiceRuntime[Any]) -> None:
        await serve(runtime, spec)

    run_service(main, spec.settings)
