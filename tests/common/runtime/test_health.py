"""The probe/metrics server on a real loopback socket: /healthz, /readyz with checks, /metrics, extra routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from libs.common.runtime.health import HealthServer
from libs.common.runtime.metrics import Metrics

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def test_probes_and_metrics_on_a_free_port(client: aiohttp.ClientSession) -> None:
    metrics = Metrics("sluice-apply")
    server = HealthServer("127.0.0.1:0", metrics, check_timeout=0.3)
    bus_up = True
    hang = asyncio.Event()

    async def bus() -> bool:
        return bus_up

    async def kube() -> bool:
        return True

    server.add_check("bus", bus)
    server.add_check("kubernetes", kube)
    async with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.bound_port != 0

        async with client.get(f"{server.url}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}

        async with client.get(f"{server.url}/readyz") as response:
            assert response.status == 200
            body = await response.json()
            assert body["ready"] is True
            assert set(body["checks"]) == {"bus", "kubernetes"}
            assert body["checks"]["bus"]["ok"] is True

        bus_up = False
        async with client.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            body = await response.json()
            assert body["ready"] is False
            assert body["checks"]["bus"] == {
                "ok": False,
                "duration_ms": body["checks"]["bus"]["duration_ms"],
                "error": "check reported not ready",
            }
            assert body["checks"]["kubernetes"]["ok"] is True

        bus_up = True

        async def hangs() -> bool:
            await hang.wait()
            return True

        server.add_check("slow", hangs)
        async with client.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            body = await response.json()
            assert body["checks"]["slow"]["error"] == "timed out after 0.3s"
            assert body["checks"]["bus"]["ok"] is True
        server.remove_check("slow")

        async def raises() -> bool:
            raise ConnectionError("dial https://u:pw@kube:6443 refused")

        server.add_check("raises", raises)
        async with client.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            error = (await response.json())["checks"]["raises"]["error"]
            assert error == "ConnectionError: dial https://***@kube:6443 refused"
        server.remove_check("raises")

        metrics.observe_reconcile("Kustomization", "success", 1.5)
        metrics.event_consumed("source.artifact", "ack")
        async with client.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        for name in (
            "sluice_reconcile_duration_seconds_bucket",
            "sluice_events_consumed_total",
            "sluice_events_published_total",
            "sluice_redeliveries_total",
            "sluice_dead_letters_total",
            "sluice_objects",
        ):
            assert name in text
        assert 'sluice_events_consumed_total{event="source.artifact",outcome="ack"} 1.0' in text

        server.mark_shutting_down()
        async with client.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["shutting_down"] is True
        async with client.get(f"{server.url}/healthz") as response:
            assert response.status == 200

    assert not server.started
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"http://127.0.0.1:{server.bound_port}/healthz"):
            pass


async def test_service_routes_share_the_server(client: aiohttp.ClientSession) -> None:
    server = HealthServer("127.0.0.1:0", Metrics("sluice-source"))

    async def artifact(request: web.Request) -> web.Response:
        return web.Response(text=f"artifact {request.match_info['path']}")

    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"received": await request.text()})

    webhooks = web.Application()
    webhooks.router.add_post("/{token}", hook)
    server.add_routes([web.get("/artifacts/{path:.*}", artifact)])
    server.add_subapp("/hook/", webhooks)
    async with server:
        async with client.get(f"{server.url}/artifacts/gitrepository/ns/name/abc.tar.gz") as response:
            assert await response.text() == "artifact gitrepository/ns/name/abc.tar.gz"
        async with client.post(f"{server.url}/hook/abc", data="ping") as response:
            assert await response.json() == {"received": "ping"}
        with pytest.raises(RuntimeError, match=r"before HealthServer\.start"):
            server.add_routes([web.get("/late", artifact)])


async def test_no_checks_means_not_ready_and_duplicates_are_refused(client: aiohttp.ClientSession) -> None:
    server = HealthServer("127.0.0.1:0", Metrics("svc"))

    async def ok() -> bool:
        return True

    server.add_check("bus", ok)
    with pytest.raises(ValueError, match="already registered"):
        server.add_check("bus", ok)
    server.remove_check("bus")
    async with server, client.get(f"{server.url}/readyz") as response:
        assert response.status == 503, "nothing has said the process is ready yet"
        assert await response.json() == {"ready": False, "checks": {}}


async def test_unspecified_host_is_reported_as_loopback(client: aiohttp.ClientSession) -> None:
    server = HealthServer("0.0.0.0:0", Metrics("svc"))
    async with server:
        assert server.url == f"http://127.0.0.1:{server.bound_port}"
        async with client.get(f"{server.url}/healthz") as response:
            assert response.status == 200


async def test_a_busy_port_fails_start_cleanly() -> None:
    first = HealthServer("127.0.0.1:0", Metrics("a"))
    async with first:
        second = HealthServer(f"127.0.0.1:{first.bound_port}", Metrics("b"))
        with pytest.raises(OSError):
            await second.start()
        assert not second.started
