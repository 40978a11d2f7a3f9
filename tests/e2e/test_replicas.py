"""Two replicas of one service, as two real processes, share its durable consumers:
every object is reconciled exactly once across them, and both take a share."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.devservers.ports import free_port
from libs.devservers.procs import ManagedProcess
from tests.harness.kube_fixtures import KubeApi

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OBJECTS = 20
NS = "replicas"


def reconciles(metrics_url: str) -> int:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    pattern = r'sluice_reconcile_duration_seconds_count\{kind="HelmRelease",result="[a-z]+"\} ([0-9.]+)'
    return int(sum(float(v) for v in re.findall(pattern, text)))


async def prepare(kubeconfig: str) -> None:
    kube = Kube.from_config(kubeconfig)
    try:
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, field_manager="test"
        )
    finally:
        await kube.close()


async def create_objects(kubeconfig: str) -> None:
    kube = Kube.from_config(kubeconfig)
    try:
        for n in range(OBJECTS):
            await kube.create(
                {
                    "apiVersion": "helm.toolkit.fluxcd.io/v2",
                    "kind": "HelmRelease",
                    "metadata": {"name": f"app-{n}", "namespace": NS},
                    "spec": {
                        "interval": "1h",
                        "chart": {
                            "spec": {
                                "chart": "app",
                                "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                            }
                        },
                    },
                }
            )
    finally:
        await kube.close()


def test_two_processes_share_the_work_exactly_once(
    nats_url: str, kube_emulator: KubeApi, tmp_path: Path
) -> None:
    asyncio.run(prepare(str(kube_emulator.kubeconfig)))
    replicas: list[tuple[ManagedProcess, str]] = []
    try:
        for n in range(2):
            port = free_port()
            env = {
                **os.environ,
                "SLUICE_NATS_URL": nats_url,
                "SLUICE_KUBECONFIG": str(kube_emulator.kubeconfig),
                "SLUICE_HTTP_ADDR": f"127.0.0.1:{port}",
                "SLUICE_WATCH_NAMESPACE": NS,
                "SLUICE_REPLICA_ID": f"apply-{n}",
            }
            process = ManagedProcess(
                f"apply-{n}",
                [sys.executable, "-m", "services.apply"],
                log_path=tmp_path / f"apply-{n}.log",
                env=env,
            )
            process.start()
            replicas.append((process, f"http://127.0.0.1:{port}"))
        for process, url in replicas:
            process.wait_until(lambda url=url: _ready(url), 60, "ready")

        asyncio.run(create_objects(str(kube_emulator.kubeconfig)))
        deadline = time.monotonic() + 60
        while sum(reconciles(f"{url}/metrics") for _, url in replicas) < OBJECTS:
            assert time.monotonic() < deadline, [p.output_tail() for p, _ in replicas]
            time.sleep(0.2)
        time.sleep(2.0)  # a duplicate delivery would show up now
        counts = [reconciles(f"{url}/metrics") for _, url in replicas]
        assert sum(counts) == OBJECTS, f"each object reconciled once across the replicas, got {counts}"
        assert all(c > 0 for c in counts), f"both replicas took a share, got {counts}"
    finally:
        for process, _ in replicas:
            process.stop(timeout=30)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
