"""The lifecycle of a Sluice service process: settings → logs, traces, HTTP server → main → clean stop.

A service's ``__main__`` is two functions::

    async def serve(runtime: ServiceRuntime[SourceSettings]) -> None:
        runtime.add_check("bus", bus_ready)            # register readiness checks first
        async with connect(runtime.settings.nats_url) as bus, run_consumers(bus, runtime):
            await runtime.stopping.wait()               # SIGTERM/SIGINT sets it
        # leaving the block drains the consumers: finish or hand back in-flight messages

    def main() -> None:
        run_service(serve, SourceSettings)              # settings class (read from env) or instance

Routes a service serves next to the probes (artifacts, webhook receivers) are added by a ``setup``
callback, which runs before the HTTP server starts (aiohttp freezes its router then); handlers reach
objects that ``serve`` creates later through a holder the two share::

    def setup(runtime: ServiceRuntime[SourceSettings]) -> None:
        runtime.health.add_routes([web.get("/artifacts/{path:.*}", artifacts.handle)])

    run_service(serve, SourceSettings, setup=setup)

``run_service`` reads the settings (a bad variable: message on stderr, exit 2), configures JSON
logging and tracing, starts the HTTP server (``/healthz``, ``/readyz``, ``/metrics``), installs
SIGTERM/SIGINT handlers and runs ``serve``. On the first signal ``stopping`` is set and ``/readyz``
turns 503; ``serve`` then has ``shutdown_grace`` seconds to return. Exit status: 0 when ``serve``
returned, 1 when it raised or overran the grace period (it is cancelled then), 2 for bad
settings. A second signal cancels ``serve`` at once.

Inside one test process several ``ServiceRuntime`` objects can run side by side: only
``own_process=True`` (what ``run_service`` uses) touches process-wide state — the root log
handler, the global tracer provider and signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Generic, NoReturn, TypeVar

from libs.common.runtime.health import HealthServer, ReadinessCheck
from libs.common.runtime.logging import BoundLogger, configure_logging, get_logger
from libs.common.runtime.metrics import Metrics
from libs.common.runtime.settings import Settings, SettingsError
from libs.common.runtime.tracing import Tracing

__all__ = [
    "EXIT_BAD_SETTINGS",
    "EXIT_FAILED",
    "EXIT_OK",
    "ServiceMain",
    "ServiceRuntime",
    "ServiceSetup",
    "run_service",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2

S = TypeVar("S", bound=Settings)
ServiceMain = Callable[["ServiceRuntime[S]"], Awaitable[None]]
ServiceSetup = Callable[["ServiceRuntime[S]"], None]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ServiceRuntime(Generic[S]):
    """Settings, logger, metrics, health server and tracing of one running service."""

    def __init__(self, settings: S, *, metrics: Metrics | None = None, own_process: bool = False) -> None:
        self.settings = settings
        self.own_process = own_process
        self.metrics = metrics if metrics is not None else Metrics(settings.service_name)
        self.health = HealthServer(settings.http_addr, self.metrics)
        self.log: BoundLogger = get_logger("sluice.runtime", service=settings.service_name)
        self.stopping = asyncio.Event()
        self.stop_reason = ""
        self._force = asyncio.Event()
        self._tracing: Tracing | None = None
        self._grace_deadline: float | None = None
        self._signals_installed: list[signal.Signals] = []

    # -- what services use ---------------------------------------------------------------------

    @property
    def tracing(self) -> Tracing:
        if self._tracing is None:
            raise RuntimeError("ServiceRuntime.start() has not run yet")
        return self._tracing

    def add_check(self, name: str, fn: ReadinessCheck, timeout: float | None = None) -> None:
        """Register a readiness check (see ``HealthServer.add_check``)."""
        self.health.add_check(name, fn, timeout)

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop, as SIGTERM does. Idempotent."""
        if self.stopping.is_set():
            return
        self.stop_reason = reason
        self._grace_deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace
        self.health.mark_shutting_down()
        self.stopping.set()

    def grace_remaining(self) -> float | None:
        """Seconds left for in-flight work after a stop was requested (None while running)."""
        if self._grace_deadline is None:
            return None
        return max(0.0, self._grace_deadline - asyncio.get_running_loop().time())

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True early (and at once) when the service is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        return self.stopping.is_set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Configure logging (own process only) and tracing, start the HTTP server, trap signals."""
        settings = self.settings
        if self.own_process:
            configure_logging(settings.log_level, settings.log_format, settings.service_name)
        self._tracing = Tracing.configure(
            settings.service_name,
            settings.otel_exporter,
            replica_id=settings.replica_id,
            set_global=self.own_process,
        )
        if self.own_process:
            # Before anything slow: a SIGTERM during startup then means "stop", not "die".
            self._install_signal_handlers()
        await self.health.start()
        self.log.info(
            "service started",
            extra={
                "http": self.health.url,
                "replica_id": settings.replica_id,
                "settings": settings.redacted(),
            },
        )
        if self.own_process:
            unknown = type(settings).unknown_env()
            if unknown:
                self.log.warning("ignoring unknown SLUICE_ variables", extra={"variables": unknown})

    async def stop(self) -> None:
        """Stop the HTTP server, flush traces and restore signal handling."""
        self._remove_signal_handlers()
        await self.health.stop()
        if self._tracing is not None:
            tracing, self._tracing = self._tracing, None
            await asyncio.to_thread(tracing.shutdown)

    async def run(self, main: ServiceMain[S], setup: ServiceSetup[S] | None = None) -> int:
        """Start, run ``main(self)`` until it returns or a stop overruns the grace period, stop.

        ``setup(self)``, when given, runs before the HTTP server starts: the place to add a
        service's routes (``self.health.add_routes``/``add_subapp``). Returns the process exit
        status (``EXIT_OK`` or ``EXIT_FAILED``).
        """
        try:
            if setup is not None:
                setup(self)
            await self.start()
        except Exception:
            self.log.exception("service failed to start")
            await self.stop()
            return EXIT_FAILED
        try:
            return await self._supervise(main)
        finally:
            await self.stop()

    async def _supervise(self, main: ServiceMain[S]) -> int:
        task = asyncio.create_task(_call(main, self), name=f"{self.settings.service_name}-main")
        stop_requested = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({task, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                grace = self.settings.shutdown_grace
                self.log.info("stopping", extra={"reason": self.stop_reason, "grace_seconds": grace})
                forced = asyncio.create_task(self._force.wait())
                try:
                    await asyncio.wait(
                        {task, forced}, timeout=self.grace_remaining(), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    forced.cancel()
                if not task.done():
                    why = "second signal" if self._force.is_set() else f"grace period of {grace:g}s over"
                    self.log.warning("cancelling in-flight work", extra={"reason": why})
                    task.cancel()
                    await asyncio.wait({task})
                    return EXIT_FAILED
        finally:
            stop_requested.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            self.log.error("service main was cancelled")
            return EXIT_FAILED
        error = task.exception()
        if error is not None:
            self.log.error("service failed", exc_info=error)
            return EXIT_FAILED
        self.log.info("service stopped", extra={"reason": self.stop_reason or "main returned"})
        return EXIT_OK

    # -- signals -------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
            self._signals_installed.append(sig)

    def _remove_signal_handlers(self) -> None:
        if not self._signals_installed:
            return
        loop = asyncio.get_running_loop()
        for sig in self._signals_installed:
            loop.remove_signal_handler(sig)
        self._signals_installed.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            self.log.warning("second stop signal: not waiting for in-flight work", extra={"signal": sig.name})
            self._force.set()
            return
        self.request_stop(f"signal {sig.name}")


async def _call(main: ServiceMain[S], runtime: ServiceRuntime[S]) -> None:
    await main(runtime)


def run_service(
    main: ServiceMain[S], settings: S | type[S], *, setup: ServiceSetup[S] | None = None
) -> NoReturn:
    """Run a service process: ``asyncio.run`` its runtime and exit with its status.

    ``settings`` is a settings instance, or a settings class to read from the environment (an
    invalid variable prints the problem to stderr and exits with status 2). ``setup`` adds the
    service's HTTP routes before the server starts (see ``ServiceRuntime.run``).
    """
    if isinstance(settings, type):
        try:
            settings = settings.from_env()
        except SettingsError as exc:
            print(f"{sys.argv[0] or 'sluice'}: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_BAD_SETTINGS) from None
    raise SystemExit(asyncio.run(_run_own_process(main, settings, setup)))


async def _run_own_process(main: ServiceMain[S], settings: S, setup: ServiceSetup[S] | None) -> int:
    runtime = ServiceRuntime(settings, own_process=True)
    return await runtime.run(main, setup)
