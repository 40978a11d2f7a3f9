"""Git → cluster: how fast a pushed commit is applied, and what idle and fan-out cost.

Runs source, build and apply in-process (as their `__main__` does) against a real nats-server,
a real git repository (file://) and the Kubernetes emulator, then measures:

1. push + `git.commit` event → Kustomization Ready at the new revision, p50/p99 over --pushes;
2. no-op GitRepository reconciles per second (the ls-remote fast path, no clone);
3. one commit fanned out to --fanout Kustomizations: time until every one applied it.

Flux with default settings polls the GitRepository every minute (`interval: 1m`), so a push
waits 30 s on average before the source even notices; the comparison line prints that ratio.

    .venv/bin/python bench/bench_git_to_cluster.py [--pushes 50] [--noops 200] [--fanout 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from percentiles import pct  # bench/percentiles.py (the scripts run from bench/)

from libs.common.api.crd import crd_documents
from libs.common.app import in_process
from libs.common.bus import Bus
from libs.common.events import GitCommit, ObjectRef, ReconcileRequest
from libs.common.kube import Kube
from libs.devservers.git import commit_files, init_bare, seed_repo
from libs.devservers.nats import NatsServer
from libs.kube_emulator import KubeEmulator
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.source.app import SPEC as SOURCE

NS = "flux-system"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
REPO = ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name="fleet")


def configmap(value: int) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  value: '{value}'\n"


def kustomization(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": KS,
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "interval": "10m",
            "path": "./apps",
            "prune": True,
            "targetNamespace": namespace,
            "sourceRef": {"kind": "GitRepository", "name": "fleet"},
        },
    }


async def applied(kube: Kube, names: list[str], revision: str) -> bool:
    items, _ = await kube.list_objects(KS, "Kustomization", NS)
    done = {
        i["metadata"]["name"] for i in items if (i.get("status") or {}).get("lastAppliedRevision") == revision
    }
    return set(names) <= done


async def wait_applied(kube: Kube, names: list[str], revision: str, timeout: float = 60) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await applied(kube, names, revision):
                await asyncio.sleep(0.005 if len(names) == 1 else 0.05)
    except TimeoutError:
        items, _ = await kube.list_objects(KS, "Kustomization", NS)
        behind = [(i["metadata"]["name"], i.get("status")) for i in items if i["metadata"]["name"] in names]
        source = await kube.get(GIT, "GitRepository", "fleet", NS)
        raise SystemExit(
            f"not applied within {timeout}s at {revision}: {behind[:3]}; source status: {(source or {}).get('status')}"
        ) from None


async def push(bus: Bus, url: str, value: int) -> tuple[str, float]:
    sha = await asyncio.to_thread(commit_files, url, {"apps/cm.yaml": configmap(value)}, f"bench {value}")
    started = time.perf_counter()
    await bus.publish(GitCommit(repository=REPO, branch="main", commit=sha, revision=f"main@sha1:{sha}"))
    return f"main@sha1:{sha}", started


async def run(args: argparse.Namespace, tmp: Path) -> None:
    bare = init_bare(tmp / "fleet.git")
    url = bare.as_uri()
    seed_repo(url, {"apps/cm.yaml": configmap(0)})
    with NatsServer(tmp / "nats") as nats_server:
        async with KubeEmulator(rollout=True) as emu:
            kubeconfig = str(emu.write_kubeconfig(tmp / "kubeconfig"))
            kube = Kube.from_config(kubeconfig)
            for crd in crd_documents():
                await kube.apply(crd, field_manager="bench")
            namespaces = [NS] + [f"bench-{n}" for n in range(args.fanout)]
            for ns in namespaces:
                await kube.apply(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, field_manager="b"
                )
            common = {"nats_url": nats_server.url, "kubeconfig": kubeconfig, "log_level": "warning"}
            bus = await Bus.connect(nats_server.url, service="bench")
            async with (
                in_process(
                    SOURCE,
                    **common,
                    artifact_store=f"file://{tmp / 'src'}",
                    artifact_addr="127.0.0.1:0",
                    git_cache_dir=str(tmp / "cache"),
                    allow_file_urls=True,
                ) as source,
                in_process(
                    BUILD, **common, artifact_store=f"file://{tmp / 'build'}", artifact_addr="127.0.0.1:0"
                ),
                in_process(APPLY, **common),
            ):
                await kube.create(
                    {
                        "apiVersion": GIT,
                        "kind": "GitRepository",
                        "metadata": {"name": "fleet", "namespace": NS},
                        "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
                    }
                )
                await kube.create(kustomization("single", "bench-0"))

                # 1. push → Ready at the new revision
                latencies: list[float] = []
                for n in range(1, args.pushes + 1):
                    revision, started = await push(bus, url, n)
                    await wait_applied(kube, ["single"], revision)
                    latencies.append(time.perf_counter() - started)

                # 2. no-op reconciles of an unchanged source, one after another (requests for one
                #    object that arrive while it is being reconciled are coalesced into one run)
                noops: list[float] = []
                for n in range(args.noops):
                    before = _reconciles(source.runtime.metrics.render().decode())
                    started = time.perf_counter()
                    await bus.publish(ReconcileRequest(object=REPO, reason="requested"), msg_id=f"noop-{n}")
                    async with asyncio.timeout(30):
                        while _reconciles(source.runtime.metrics.render().decode()) <= before:
                            await asyncio.sleep(0.001)
                    noops.append(time.perf_counter() - started)

                # 3. one commit fanned out to many Kustomizations
                names = [f"fan-{n}" for n in range(args.fanout)]
                for n, name in enumerate(names):
                    await kube.create(kustomization(name, f"bench-{n}"))
                revision, _ = await push(bus, url, 10_000)
                await wait_applied(kube, names, revision, timeout=600)  # all are at the current revision
                revision, started = await push(bus, url, 10_001)
                await wait_applied(kube, [*names, "single"], revision, timeout=600)
                fanout_seconds = time.perf_counter() - started
            await bus.close()
            await kube.close()

    print(f"push + git.commit → Kustomization Ready at the new revision ({args.pushes} pushes)")
    print(
        f"  p50 {pct(latencies, 50) * 1000:.0f} ms   p99 {pct(latencies, 99) * 1000:.0f} ms   "
        f"mean {statistics.fmean(latencies) * 1000:.0f} ms"
    )
    print(
        f"  Flux with the default 1m GitRepository interval waits 30 s on average before it fetches: "
        f"{30 / statistics.fmean(latencies):.0f}x slower than this mean"
    )
    print(
        f"no-op GitRepository reconcile (request → status written, one ls-remote, no clone): "
        f"p50 {pct(noops, 50) * 1000:.1f} ms  p99 {pct(noops, 99) * 1000:.1f} ms  → {1 / statistics.fmean(noops):.0f}/s "
        "per object, sequentially"
    )
    print(
        f"one commit → {args.fanout + 1} Kustomizations applied: {fanout_seconds:.1f} s "
        f"({(args.fanout + 1) / fanout_seconds:.1f} Kustomizations/s)"
    )


def _reconciles(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith('sluice_reconcile_duration_seconds_count{kind="GitRepository"'):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--noops", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
