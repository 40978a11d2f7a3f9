"""The service's HTTP server: ``/healthz``, ``/readyz`` and ``/metrics`` (and any routes a service adds).

    health = HealthServer("0.0.0.0:8080", metrics)
    health.add_check("bus", bus.is_connected)                 # async () -> bool
    health.add_check("kubernetes", kube.ping, timeout=3.0)
    health.add_routes([web.get("/artifacts/{path:.*}", serve_artifact)])
    await health.start()
    ...
    await health.stop()

- ``/healthz``: 200 ``{"status": "ok"}`` as long as the event loop answers (liveness).
- ``/readyz``: runs every check concurrently, each bounded by its timeout. 200 when all pass, 503
  otherwise, and 503 once ``mark_shutting_down()`` was called so traffic drains before exit. The
  body is ``{"ready": bool, "checks": {name: {"ok": bool, "duration_ms": float, "error": str?}}}``.
- ``/metrics``: ``metrics.render()`` in the Prometheus text format.

Extra routes must be added before ``start()`` (aiohttp freezes the router then): ``add_routes`` for
a few handlers, or ``add_subapp("/hook/", webhook_app)`` for a self-contained ``web.Application``.
With port 0 the kernel picks a free port; ``url`` gives the bound ``http://host:port`` after
``start()`` (an unspecified host such as ``0.0.0.0`` is reported as loopback so the URL is usable).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from libs.common.runtime.metrics import CONTENT_TYPE, Metrics
from libs.common.runtime.redact import sanitize_message
from libs.common.runtime.settings import parse_host_port

__all__ = ["CheckResult", "HealthServer", "ReadinessCheck"]

ReadinessCheck = Callable[[], Awaitable[bool]]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    duration_ms: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "duration_ms": round(self.duration_ms, 3)}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class _Check:
    fn: ReadinessCheck
    timeout: float


class HealthServer:
    """aiohttp server for probes and metrics; ``app`` is open for a service's own routes."""

    def __init__(self, addr: str, metrics: Metrics, *, check_timeout: float = 2.0) -> None:
        self.host, self.port = parse_host_port(addr)
        self.metrics = metrics
        self.check_timeout = check_timeout
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self._checks: dict[str, _Check] = {}
        self._runner: web.AppRunner | None = None
        self._bound: tuple[str, int] | None = None
        self._shutting_down = False

    # -- configuration -------------------------------------------------------------------------

    def add_check(self, name: str, fn: ReadinessCheck, timeout: float | None = None) -> None:
        """Register a readiness check: an async callable returning True when healthy.

        A check that returns False, raises, or takes longer than ``timeout`` (default
        ``check_timeout``) makes the service not ready. Checks may be added after ``start()``.
        """
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = _Check(fn, self.check_timeout if timeout is None else timeout)

    def remove_check(self, name: str) -> None:
        self._checks.pop(name, None)

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Add a service's routes (``web.get(...)``, a ``web.RouteTableDef``) before ``start()``."""
        self._ensure_not_started("add_routes")
        self.app.add_routes(routes)

    def add_subapp(self, prefix: str, subapp: web.Application) -> None:
        """Mount a whole ``web.Application`` under ``prefix`` before ``start()``."""
        self._ensure_not_started("add_subapp")
        self.app.add_subapp(prefix, subapp)

    def _ensure_not_started(self, what: str) -> None:
        if self._runner is not None:
            raise RuntimeError(
                f"{what}() must be called before HealthServer.start() (in a service: from the setup callback)"
            )

    def mark_shutting_down(self) -> None:
        """From now on ``/readyz`` answers 503 so load balancers stop sending work."""
        self._shutting_down = True

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("HealthServer already started")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._bound = (str(address[0]), int(address[1]))
        _log.info("http server listening", extra={"url": self.url})

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def bound_port(self) -> int:
        if self._bound is None:
            raise RuntimeError("HealthServer is not started")
        return self._bound[1]

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (loopback when bound to all interfaces)."""
        if self._bound is None:
            raise RuntimeError("HealthServer is not started")
        host, port = self._bound
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        shown = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"http://{shown}:{port}"

    # -- readiness -----------------------------------------------------------------------------

    async def run_checks(self) -> list[CheckResult]:
        """Run every check concurrently; each result says whether it passed and how long it took."""
        checks = list(self._checks.items())
        return list(await asyncio.gather(*(self._run_one(name, check) for name, check in checks)))

    async def _run_one(self, name: str, check: _Check) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(check.timeout):
                ok = bool(await check.fn())
            error = "" if ok else "check reported not ready"
        except TimeoutError:
            ok, error = False, f"timed out after {check.timeout:g}s"
        except Exception as exc:
            ok, error = False, sanitize_message(f"{type(exc).__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(name, ok, elapsed, error)

    # -- handlers ------------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        results = await self.run_checks()
        # No checks means nothing has said the process is ready yet (a service registers its
        # first check before it connects anything), so an empty set is not ready.
        ready = bool(results) and all(r.ok for r in results) and not self._shutting_down
        body: dict[str, Any] = {"ready": ready, "checks": {r.name: r.as_dict() for r in results}}
        if self._shutting_down:
            body["shutting_down"] = True
        if not ready:
            failed = [r.name for r in results if not r.ok]
            _log.debug("not ready", extra={"failed_checks": failed, "shutting_down": self._shutting_down})
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
