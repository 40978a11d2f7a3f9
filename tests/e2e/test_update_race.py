"""Five ImageUpdateAutomations push to one branch at the same moment: every update lands, no
commit is lost, and none of them waits for its (one hour) interval."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from libs.common.bus import Bus
from libs.common.events import ImageTag, ObjectRef
from libs.devservers.git import log_messages, seed_repo, show_file
from services.image_update.app import SPEC as IMAGE_UPDATE
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import emulated_cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "flux-system"
POLICY = "image.toolkit.fluxcd.io/v1"
APPS = 5


def manifest(n: int, tag: str) -> str:
    marker = f'# {{"$imagepolicy": "flux-system:app-{n}"}}'
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{n}\nspec:\n  template:\n    spec:\n"
        f"      containers:\n        - name: app\n          image: registry.example.com/app-{n}:{tag} {marker}\n"
    )


async def test_five_automations_racing_on_one_branch_all_land(
    nats_url: str, git_server: GitServer, tmp_path: Path
) -> None:
    bare, url = git_server.new_repo("race")
    await asyncio.to_thread(seed_repo, url, {f"apps/app-{n}.yaml": manifest(n, "1.0.0") for n in range(APPS)})
    async with emulated_cluster(tmp_path) as cluster:
        kube = cluster.kube
        await kube.create(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "race", "namespace": NS},
                "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}},
            }
        )
        for n in range(APPS):
            await kube.create(
                {
                    "apiVersion": POLICY,
                    "kind": "ImagePolicy",
                    "metadata": {"name": f"app-{n}", "namespace": NS, "labels": {"app": f"app-{n}"}},
                    "spec": {
                        "imageRepositoryRef": {"name": f"app-{n}"},
                        "policy": {"semver": {"range": ">=1.0.0"}},
                    },
                }
            )
            await kube.create(
                {
                    "apiVersion": POLICY,
                    "kind": "ImageUpdateAutomation",
                    "metadata": {"name": f"app-{n}", "namespace": NS},
                    "spec": {
                        "interval": "1h",
                        "sourceRef": {"kind": "GitRepository", "name": "race"},
                        "policySelector": {"matchLabels": {"app": f"app-{n}"}},
                        "git": {
                            "checkout": {"ref": {"branch": "main"}},
                            "commit": {
                                "author": {"name": "bot", "email": "bot@example.com"},
                                "messageTemplate": f"app-{n}: {{{{range .Changed.Changes}}}}{{{{.NewValue}}}}{{{{end}}}}",
                            },
                            "push": {"branch": "main"},
                        },
                        "update": {"path": "./apps", "strategy": "Setters"},
                    },
                }
            )
        bus = await Bus.connect(nats_url, service="race")
        try:
            async with running_service(
                IMAGE_UPDATE,
                nats_url=nats_url,
                kubeconfig=cluster.kubeconfig,
                git_cache_dir=str(tmp_path / "cache"),
                allow_file_urls=True,
            ):

                async def settled() -> bool:
                    items, _ = await kube.list_objects(POLICY, "ImageUpdateAutomation", NS)
                    return len(items) == APPS and all(
                        any(c["type"] == "Ready" for c in (i.get("status") or {}).get("conditions") or [])
                        for i in items
                    )

                await eventually(settled, timeout=30, what="the automations' first runs")

                # What image-scan does for five policies at once: record latestRef, publish image.tag.
                for n in range(APPS):
                    ref = {"name": f"registry.example.com/app-{n}", "tag": "2.0.0"}
                    await kube.patch_status(
                        POLICY, "ImagePolicy", f"app-{n}", NS, {"latestRef": ref}, field_manager="test"
                    )
                started = time.monotonic()
                await asyncio.gather(
                    *(
                        bus.publish(
                            ImageTag(
                                policy=ObjectRef(
                                    api_version=POLICY, kind="ImagePolicy", namespace=NS, name=f"app-{n}"
                                ),
                                image=f"registry.example.com/app-{n}",
                                tag="2.0.0",
                            )
                        )
                        for n in range(APPS)
                    )
                )

                def landed() -> bool:
                    return all(f"app-{n}:2.0.0" in show_file(bare, f"apps/app-{n}.yaml") for n in range(APPS))

                await eventually(
                    lambda: asyncio.to_thread(landed), timeout=60, what="all five updates in Git"
                )
                took = time.monotonic() - started
        finally:
            await bus.close(grace=1)

    messages = log_messages(bare)
    for n in range(APPS):
        ours = [m for m in messages if m.startswith(f"app-{n}:")]
        assert ours == [f"app-{n}: registry.example.com/app-{n}:2.0.0"], (n, messages)
    assert took < 20, f"the racing automations took {took:.1f}s (no interval may be waited for)"
