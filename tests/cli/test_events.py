"""`sluice events`: Flux events from NATS, as human lines or JSON, filtered with --for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.cli.events import nats_url as resolve_nats_url
from libs.cli.main import main
from libs.common.bus import Bus
from libs.common.events import EventRecord

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 11, 25, 21, 30, 5, tzinfo=UTC)


def record(kind: str, name: str, severity: str, reason: str, message: str) -> EventRecord:
    group = "kustomize.toolkit.fluxcd.io/v1" if kind == "Kustomization" else "image.toolkit.fluxcd.io/v1"
    return EventRecord.model_validate(
        {
            "involvedObject": {"apiVersion": group, "kind": kind, "namespace": "flux-system", "name": name},
            "severity": severity,
            "timestamp": WHEN,
            "message": message,
            "reason": reason,
            "reportingController": "sluice",
        }
    )


def publish(url: str, *records: EventRecord) -> None:
    async def run() -> None:
        bus = await Bus.connect(url, service="test-events")
        try:
            for r in records:
                await bus.publish(r)
        finally:
            await bus.close(grace=1)

    asyncio.run(run())


def test_events_human_json_and_for(nats_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    publish(
        nats_url,
        record(
            "ImageUpdateAutomation", "podinfo", "info", "Succeeded", "pushed commit 'abc' to branch 'main'"
        ),
        record("Kustomization", "apps", "error", "HealthCheckFailed", "timeout waiting for:\nDeployment/web"),
        record("ImageUpdateAutomation", "other", "info", "Succeeded", "no change"),
    )
    assert main(["events", "--nats", nats_url, "--since", "1h", "--count", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-25T21:30:05Z info ImageUpdateAutomation/flux-system/podinfo Succeeded: "
        "pushed commit 'abc' to branch 'main'",
        "2026-11-25T21:30:05Z error Kustomization/flux-system/apps HealthCheckFailed: "
        "timeout waiting for: Deployment/web",
    ]

    assert (
        main(
            [
                "events",
                "--nats",
                nats_url,
                "--since",
                "1h",
                "--count",
                "1",
                "--for",
                "kustomization/apps",
                "-o",
                "json",
            ]
        )
        == 0
    )
    line = json.loads(capsys.readouterr().out)
    assert line["involvedObject"] == {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "namespace": "flux-system",
        "name": "apps",
    }
    assert (line["severity"], line["reason"]) == ("error", "HealthCheckFailed")
    assert line["message"] == "timeout waiting for:\nDeployment/web"

    # --for with a kind and a name picks that one object.
    assert (
        main(
            [
                "events",
                "--nats",
                nats_url,
                "--since",
                "1h",
                "--count",
                "1",
                "--for",
                "ImageUpdateAutomation/other",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.endswith("ImageUpdateAutomation/flux-system/other Succeeded: no change\n")


def test_events_follows_new_events_from_nats_url_env(nats_url: str) -> None:
    """Without --since only events published from now on are printed, as they arrive."""
    publish(nats_url, record("Kustomization", "apps", "info", "ReconciliationSucceeded", "before"))
    env = {**os.environ, "SLUICE_NATS_URL": nats_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "libs.cli.main", "events", "--count", "1", "--for", "Kustomization"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        tick = 0
        while proc.poll() is None:
            assert time.monotonic() < deadline, "sluice events printed nothing"
            tick += 1
            publish(
                nats_url, record("Kustomization", "apps", "info", "ReconciliationSucceeded", f"tick {tick}")
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.3)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.startswith(
        "2026-11-25T21:30:05Z info Kustomization/flux-system/apps ReconciliationSucceeded: tick "
    )


def test_events_without_a_nats_url_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SLUICE_NATS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["events"]) == 1
    assert "no NATS URL" in capsys.readouterr().err

    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "endpoints.json").write_text(json.dumps({"nats": "nats://127.0.0.1:4999"}))
    assert resolve_nats_url(None) == "nats://127.0.0.1:4999"
    monkeypatch.setenv("SLUICE_NATS_URL", "nats://127.0.0.1:5000")
    assert resolve_nats_url(None) == "nats://127.0.0.1:5000"
    assert resolve_nats_url("nats://h:1") == "nats://h:1"
