"""ServiceRuntime end to end: a real service process stops cleanly on SIGTERM within its grace period."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from libs.common.runtime.service import EXIT_FAILED, EXIT_OK, ServiceRuntime
from libs.common.runtime.settings import Settings
from libs.common.runtime.tracing import read_spans

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


class ServiceProcess:
    """A tiny_service subprocess whose JSON log lines are collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.logs: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._new_line = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode().rstrip("\n")
            async with self._new_line:
                self.raw.append(text)
                with contextlib.suppress(json.JSONDecodeError):
                    self.logs.append(json.loads(text))
                self._new_line.notify_all()

    async def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout), self._new_line:
            while True:
                for entry in self.logs:
                    if predicate(entry):
                        return entry
                if self._reader.done():
                    raise AssertionError(f"process ended without the expected log line: {self.raw}")
                await self._new_line.wait()

    async def wait(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._reader


@pytest.fixture
async def start_service(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[ServiceProcess] = []

    async def start(**env: str) -> ServiceProcess:
        environ = {
            **os.environ,
            "SLUICE_SERVICE_NAME": "sluice-tiny",
            "SLUICE_HTTP_ADDR": "127.0.0.1:0",
            "SLUICE_SHUTDOWN_GRACE": "5",
            "SLUICE_OTEL_EXPORTER": f"file:{tmp_path / 'spans.jsonl'}",
            **env,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.common.runtime.tiny_service",
            cwd=REPO,
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        service = ServiceProcess(proc)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.close()


async def test_sigterm_waits_for_in_flight_work_then_exits_zero(
    start_service: Callable[..., Any], tmp_path: Path
) -> None:
    service: ServiceProcess = await start_service(
        TINY_MODE="graceful", SLUICE_NATS_URL="nats://bus:natspw@127.0.0.1:4222", SLUICE_CONCURENCY="3"
    )
    started = await service.wait_for_log(lambda e: e["msg"] == "service started")
    url = started["http"]
    assert started["service"] == "sluice-tiny"
    assert started["settings"]["shutdown_grace"] == 5.0
    assert started["settings"]["nats_url"] == "nats://***@127.0.0.1:4222"
    typo = await service.wait_for_log(lambda e: e["msg"] == "ignoring unknown SLUICE_ variables")
    assert typo["level"] == "warning" and typo["variables"] == ["SLUICE_CONCURENCY"]
    working = await service.wait_for_log(lambda e: e["msg"] == "working")
    assert (working["kind"], working["namespace"], working["name"]) == ("Tiny", "default", "tiny")
    assert len(working["trace_id"]) == 32

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        async with client.get(f"{url}/readyz") as response:
            assert response.status == 200
        async with client.get(f"{url}/metrics") as response:
            assert (
                'sluice_reconcile_duration_seconds_count{kind="Tiny",result="success"} 1.0'
                in await response.text()
            )

        service.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        stopping = await service.wait_for_log(lambda e: e["msg"] == "finishing in-flight work")
        assert 0 < stopping["grace_remaining"] <= 5
        # While draining the process is alive but no longer ready.
        async with client.get(f"{url}/readyz") as response:
            assert response.status == 503
        async with client.get(f"{url}/healthz") as response:
            assert response.status == 200

    service.proc.send_signal(signal.SIGUSR1)
    assert await service.wait(timeout=5) == EXIT_OK
    assert time.monotonic() - signalled < 5
    messages = [entry["msg"] for entry in service.logs]
    assert messages.index("in-flight work done") < messages.index("service stopped")
    assert next(e for e in service.logs if e["msg"] == "stopping")["reason"] == "signal SIGTERM"
    assert "natspw" not in "\n".join(service.raw)
    (span,) = read_spans(tmp_path / "spans.jsonl")
    assert span["name"] == "work item" and span["service"] == "sluice-tiny"
    assert span["trace_id"] == working["trace_id"]


async def test_work_that_ignores_the_stop_is_cancelled_after_the_grace_period(
    start_service: Callable[..., Any],
) -> None:
    service: ServiceProcess = await start_service(TINY_MODE="stubborn", SLUICE_SHUTDOWN_GRACE="0.5")
    await service.wait_for_log(lambda e: e["msg"] == "working, not listening")
    service.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert await service.wait(timeout=5) == EXIT_FAILED
    assert time.monotonic() - signalled >= 0.5
    cancelled = await service.wait_for_log(lambda e: e["msg"] == "cancelling in-flight work")
    assert cancelled["reason"] == "grace period of 0.5s over"


async def test_a_second_signal_does_not_wait_for_the_grace_period(start_service: Callable[..., Any]) -> None:
    service: ServiceProcess = await start_service(TINY_MODE="stubborn", SLUICE_SHUTDOWN_GRACE="60")
    await service.wait_for_log(lambda e: e["msg"] == "working, not listening")
    service.proc.send_signal(signal.SIGTERM)
    await service.wait_for_log(lambda e: e["msg"] == "stopping")
    service.proc.send_signal(signal.SIGINT)
    assert await service.wait(timeout=5) == EXIT_FAILED
    cancelled = await service.wait_for_log(lambda e: e["msg"] == "cancelling in-flight work")
    assert cancelled["reason"] == "second signal"


async def test_a_failing_service_exits_one_with_a_redacted_error(start_service: Callable[..., Any]) -> None:
    service: ServiceProcess = await start_service(TINY_MODE="crash")
    assert await service.wait(timeout=10) == EXIT_FAILED
    failed = await service.wait_for_log(lambda e: e["msg"] == "service failed")
    assert "RuntimeError: cannot reach https://***@nats.example" in failed["exc"]
    assert "hunter2" not in "\n".join(service.raw)


async def test_bad_settings_exit_two_naming_the_variable(start_service: Callable[..., Any]) -> None:
    service: ServiceProcess = await start_service(SLUICE_CONCURRENCY="many")
    assert await service.wait(timeout=10) == 2
    assert any("SLUICE_CONCURRENCY" in line and "'many'" in line for line in service.raw)


async def test_two_runtimes_in_one_process(tmp_path: Path) -> None:
    """Without own_process the runtime leaves signals, root logging and the global tracer alone."""

    async def serve(runtime: ServiceRuntime[Settings]) -> None:
        async def up() -> bool:
            return True

        runtime.add_check("up", up)  # as a service does before it reports ready
        async with aiohttp.ClientSession() as client, client.get(f"{runtime.health.url}/readyz") as response:
            assert response.status == 200
        with runtime.tracing.span("step"):
            runtime.metrics.event_published("x.y", "ok")
        runtime.request_stop("done")
        assert await runtime.sleep(30) is True
        assert runtime.stop_reason == "done"

    def runtime(name: str) -> ServiceRuntime[Settings]:
        settings = Settings.from_env(
            {
                "SLUICE_SERVICE_NAME": name,
                "SLUICE_HTTP_ADDR": "127.0.0.1:0",
                "SLUICE_OTEL_EXPORTER": f"file:{tmp_path / 'spans.jsonl'}",
            }
        )
        return ServiceRuntime(settings)

    first, second = runtime("one"), runtime("two")
    handler_before = signal.getsignal(signal.SIGTERM)
    codes = await asyncio.gather(first.run(serve), second.run(serve))
    assert codes == [EXIT_OK, EXIT_OK]
    assert signal.getsignal(signal.SIGTERM) is handler_before
    assert sorted(span["service"] for span in read_spans(tmp_path / "spans.jsonl")) == ["one", "two"]
    assert "sluice_events_published_total" in first.metrics.render().decode()
    assert not first.health.started and not second.health.started


async def test_a_main_that_returns_on_its_own_exits_zero() -> None:
    async def serve(runtime: ServiceRuntime[Settings]) -> None:
        assert runtime.grace_remaining() is None

    settings = Settings.from_env({"SLUICE_HTTP_ADDR": "127.0.0.1:0"})
    assert await ServiceRuntime(settings).run(serve) == EXIT_OK


async def test_start_failure_is_reported_not_raised() -> None:
    settings = Settings.from_env(
        {"SLUICE_HTTP_ADDR": "127.0.0.1:0", "SLUICE_OTEL_EXPORTER": "file:/proc/forbidden/x"}
    )

    async def serve(runtime: ServiceRuntime[Settings]) -> None:
        raise AssertionError("must not run")

    assert await ServiceRuntime(settings).run(serve) == EXIT_FAILED


async def test_setup_adds_routes_that_reach_objects_made_later_by_main() -> None:
    """Routes go in before the server starts; the handler finds what ``serve`` built via a holder."""
    holder: dict[str, str] = {}

    async def greeting(request: web.Request) -> web.Response:
        return web.Response(text=holder.get("greeting", "not yet"))

    def setup(runtime: ServiceRuntime[Settings]) -> None:
        runtime.health.add_routes([web.get("/hello", greeting)])

    async def serve(runtime: ServiceRuntime[Settings]) -> None:
        holder["greeting"] = "hello from serve"
        async with aiohttp.ClientSession() as client, client.get(f"{runtime.health.url}/hello") as response:
            assert await response.text() == "hello from serve"

    settings = Settings.from_env({"SLUICE_HTTP_ADDR": "127.0.0.1:0"})
    assert await ServiceRuntime(settings).run(serve, setup) == EXIT_OK
