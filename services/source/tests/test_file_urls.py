"""file:// GitRepository URLs are refused unless the service allows them (SLUICE_ALLOW_FILE_URLS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.devservers.git import init_bare, seed_repo
from libs.kube_emulator import KubeEmulator
from services.source.app import SPEC
from tests.harness.services import running_service
from tests.support import eventually

pytestmark = pytest.mark.integration

GIT = "source.toolkit.fluxcd.io/v1"


async def test_file_urls_are_refused_by_default(nats_url: str, tmp_path: Path) -> None:
    url = init_bare(tmp_path / "local.git").as_uri()
    seed_repo(url, {"a.yaml": "a: 1\n"})
    async with KubeEmulator() as emu:
        kubeconfig = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
        kube = Kube.from_config(kubeconfig)
        try:
            for crd in crd_documents():
                await kube.apply(crd, field_manager="test")
            await kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}, field_manager="t"
            )
            async with running_service(
                SPEC,
                nats_url=nats_url,
                kubeconfig=kubeconfig,
                artifact_store=f"file://{tmp_path / 'artifacts'}",
                artifact_addr="127.0.0.1:0",
                git_cache_dir=str(tmp_path / "cache"),
            ) as svc:
                assert svc.settings.allow_file_urls is False
                await kube.create(
                    {
                        "apiVersion": GIT,
                        "kind": "GitRepository",
                        "metadata": {"name": "local", "namespace": "t"},
                        "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}},
                    }
                )

                async def stalled() -> dict[str, str] | None:
                    obj = await kube.get(GIT, "GitRepository", "local", "t")
                    conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
                    return conds.get("Stalled")

                condition = await eventually(stalled, what="the file:// URL refused")
                assert condition["reason"] == "URLInvalid"
                assert "SLUICE_ALLOW_FILE_URLS" in condition["message"]
        finally:
            await kube.close()
