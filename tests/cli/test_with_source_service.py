"""The CLI against the real source service: `sluice create source git` then `sluice reconcile
source git` waits for the service's lastHandledReconcileAt and prints the fetched revision;
`sluice suspend`/`resume` round-trip with the service answering."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from libs.devservers.git import head, seed_repo
from services.source.app import SPEC as SOURCE
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import emulated_cluster, run_cli

pytestmark = pytest.mark.integration


async def sluice(*argv: str, timeout: float = 60.0) -> tuple[int, str]:
    return await run_cli(*argv, timeout=timeout)


async def test_reconcile_suspend_resume_against_the_source_service(
    nats_url: str, git_server: GitServer, tmp_path: Path
) -> None:
    bare, url = git_server.new_repo("cli-fleet")
    await asyncio.to_thread(seed_repo, url, {"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\n"})
    sha = await asyncio.to_thread(head, bare)
    async with (
        emulated_cluster(tmp_path) as cluster,
        running_service(
            SOURCE,
            nats_url=nats_url,
            kubeconfig=cluster.kubeconfig,
            artifact_store=f"file://{tmp_path / 'artifacts'}",
            artifact_addr="127.0.0.1:0",
            git_cache_dir=str(tmp_path / "git-cache"),
            allow_file_urls=True,
        ),
    ):
        k = ("--kubeconfig", cluster.kubeconfig)
        rc, out = await sluice(
            *k, "create", "source", "git", "fleet", "--url", url, "--branch", "main", "--interval", "1h"
        )
        assert rc == 0, out

        rc, out = await sluice(*k, "reconcile", "source", "git", "fleet", "--timeout", "30s")
        assert rc == 0, out
        assert out.splitlines() == [
            "► annotating GitRepository fleet in flux-system namespace",
            "✔ GitRepository annotated",
            "◎ waiting for GitRepository reconciliation",
            f"✔ fetched revision main@sha1:{sha}",
        ]

        rc, out = await sluice(*k, "get", "sources", "git")
        assert rc == 0, out
        assert out.splitlines()[1].split()[:4] == ["fleet", f"main@sha1:{sha}", "False", "True"]

        rc, out = await sluice(*k, "suspend", "source", "git", "fleet")
        assert rc == 0, out
        rc, out = await sluice(*k, "get", "sources", "git", "fleet")
        assert out.splitlines()[1].split()[2] == "True"

        rc, out = await sluice(*k, "resume", "source", "git", "fleet", "--timeout", "30s")
        assert rc == 0, out
        assert out.splitlines()[-1] == f"✔ fetched revision main@sha1:{sha}"
