"""The flagship path: a new image tag → the Deployment in the cluster runs it.

All six services run in-process (as their `__main__` does) against a real nats-server, a real
docker-registry, a real git repository and the Kubernetes emulator, with every interval at 1h.
The objects are the demo's (Flux's guide, `libs/cli/demo.py`). Each round pushes a new tag, calls the Receiver once (as a registry webhook would) and waits
until the Deployment's image is the new tag: registry → image-scan → image.tag → image-update →
git push + git.commit → source → build → apply.

Flux with its documented intervals (ImageRepository 1m, ImageUpdateAutomation 30m or the guide's
1m, GitRepository 1m, Kustomization 10m) waits for each poll in turn; the comparison line prints
the polling-only expectation for the guide's 1m intervals (about 30 s per polled hop on average).

    .venv/bin/python bench/bench_image_to_cluster.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from percentiles import pct  # bench/percentiles.py (the scripts run from bench/)

from libs.cli.demo import deployment, guide_objects
from libs.common.api.crd import crd_documents
from libs.common.app import in_process
from libs.common.kube import Kube
from libs.devservers.git import init_bare, seed_repo
from libs.devservers.nats import NatsServer
from libs.devservers.ports import free_port
from libs.devservers.registry import DockerRegistry, push_image
from libs.kube_emulator import KubeEmulator
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.image_scan.app import SPEC as IMAGE_SCAN
from services.image_update.app import SPEC as IMAGE_UPDATE
from services.notify.app import SPEC as NOTIFY
from services.source.app import SPEC as SOURCE

NS = "flux-system"


async def image_of(kube: Kube) -> str | None:
    obj = await kube.get("apps/v1", "Deployment", "podinfo", "default")
    if not obj:
        return None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def wait_image(kube: Kube, expected: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while await image_of(kube) != expected:
            await asyncio.sleep(0.005)


async def run(rounds: int, tmp: Path) -> list[float]:
    with NatsServer(tmp / "nats") as nats_server, DockerRegistry(tmp / "registry") as registry:
        image = f"{registry.host}/podinfo"
        await asyncio.to_thread(push_image, registry.url, "podinfo", "1.0.0")
        git_url = init_bare(tmp / "fleet.git").as_uri()
        seed_repo(git_url, {"clusters/demo/podinfo.yaml": deployment(f"{image}:1.0.0")})
        async with KubeEmulator() as emu:
            kubeconfig = str(emu.write_kubeconfig(tmp / "kubeconfig"))
            kube = Kube.from_config(kubeconfig)
            for crd in crd_documents():
                await kube.apply(crd, field_manager="bench")
            await kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, field_manager="b"
            )
            port = free_port()
            common = {"nats_url": nats_server.url, "kubeconfig": kubeconfig, "log_level": "warning"}
            async with contextlib.AsyncExitStack() as stack:
                for spec, extra in (
                    (
                        SOURCE,
                        {
                            "artifact_addr": "127.0.0.1:0",
                            "artifact_store": f"file://{tmp / 's'}",
                            "git_cache_dir": str(tmp / "gc"),
                            "allow_file_urls": True,
                        },
                    ),
                    (BUILD, {"artifact_addr": "127.0.0.1:0", "artifact_store": f"file://{tmp / 'b'}"}),
                    (APPLY, {}),
                    (IMAGE_SCAN, {"artifact_store": f"file://{tmp / 'tags'}"}),
                    (IMAGE_UPDATE, {"git_cache_dir": str(tmp / "iu"), "allow_file_urls": True}),
                    (NOTIFY, {"receiver_addr": f"127.0.0.1:{port}"}),
                ):
                    await stack.enter_async_context(in_process(spec, **common, **extra))
                for obj in guide_objects(git_url, image):
                    await kube.create(obj)
                await wait_image(kube, f"{image}:1.0.0")
                path = None
                async with asyncio.timeout(30):
                    while not path:
                        receiver = await kube.get(
                            "notification.toolkit.fluxcd.io/v1", "Receiver", "registry", NS
                        )
                        path = ((receiver or {}).get("status") or {}).get("webhookPath")
                        await asyncio.sleep(0.05)
                latencies: list[float] = []
                async with aiohttp.ClientSession() as http:
                    for n in range(1, rounds + 1):
                        tag = f"1.0.{n}"
                        await asyncio.to_thread(push_image, registry.url, "podinfo", tag)
                        started = time.perf_counter()
                        async with http.post(f"http://127.0.0.1:{port}{path}", json={"tag": tag}) as resp:
                            assert resp.status == 200, await resp.text()
                        await wait_image(kube, f"{image}:{tag}")
                        latencies.append(time.perf_counter() - started)
            await kube.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        latencies = asyncio.run(run(args.rounds, Path(tmp)))
    print(f"tag push + Receiver call → Deployment running the new tag ({args.rounds} rounds)")
    print(
        f"  p50 {pct(latencies, 50) * 1000:.0f} ms   p99 {pct(latencies, 99) * 1000:.0f} ms   "
        f"mean {statistics.fmean(latencies) * 1000:.0f} ms   (goal: p50 <= 1 s, p99 <= 3 s)"
    )
    polling = 3 * 30.0  # ImageRepository, ImageUpdateAutomation and GitRepository polls at 1m: ~30 s each
    print(
        f"  polling only, with the guide's 1m intervals: ~{polling:.0f} s on average before the cluster "
        f"runs a new tag ({polling / statistics.fmean(latencies):.0f}x this mean)"
    )


if __name__ == "__main__":
    main()
