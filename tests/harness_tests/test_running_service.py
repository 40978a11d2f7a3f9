"""The in-process service runner the service tests use: it starts a real service and stops it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator
from services.image_scan.app import SPEC
from tests.harness.services import running_service

pytestmark = pytest.mark.integration


async def test_a_service_runs_in_process_and_reports_ready(nats_url: str, tmp_path: Path) -> None:
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.close()
        async with running_service(SPEC, nats_url=nats_url, kubeconfig=str(kubeconfig)) as svc:
            assert svc.settings.service_name == "sluice-image-scan"
            async with aiohttp.ClientSession() as session, session.get(f"{svc.url}/metrics") as resp:
                assert "sluice_reconcile_duration_seconds" in await resp.text()
