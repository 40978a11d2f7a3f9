"""Latency of the Kubernetes API emulator over real HTTP with the official client.

Prints p50/p99 of get, list (one namespace of 100 objects) and server-side apply, with 100 and with
10,000 objects stored in total — single-object and per-namespace requests should not slow down.

    .venv/bin/python bench/bench_kube_emulator.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config, dynamic

from libs.kube_emulator import KubeEmulator

PER_NAMESPACE = 100


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, round(q * (len(ordered) - 1)))
    return ordered[index]


def measure(rounds: int, action: Callable[[int], object]) -> tuple[float, float]:
    for i in range(min(20, rounds)):
        action(i)
    samples = []
    for i in range(rounds):
        started = time.perf_counter()
        action(i)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 0.99)


def seed(emu: KubeEmulator, total: int) -> None:
    """Store `total` ConfigMaps, 100 per namespace, directly on the emulator's loop (fast setup)."""
    cluster = emu.cluster

    def fill() -> None:
        namespaces = cluster.types[("", "namespaces")]
        configmaps = cluster.types[("", "configmaps")]
        existing = cluster.store.count(("", "configmaps"))
        for index in range(existing, total):
            ns = f"bench-{index // PER_NAMESPACE}"
            if cluster.store.get(("", "namespaces"), "", ns) is None:
                cluster.create(namespaces, "v1", None, {"metadata": {"name": ns}}, "bench")
            cluster.create(
                configmaps,
                "v1",
                ns,
                {
                    "metadata": {"name": f"cm-{index}", "labels": {"i": str(index % 7)}},
                    "data": {"k": "v" * 64},
                },
                "bench",
            )

    emu.call(fill)


def run(rounds: int) -> list[tuple[int, str, float, float]]:
    rows: list[tuple[int, str, float, float]] = []
    with KubeEmulator.in_thread(rollout=False) as emu, tempfile.TemporaryDirectory() as tmp:
        api = config.new_client_from_config(str(emu.write_kubeconfig(Path(tmp) / "kubeconfig")))
        v1 = client.CoreV1Api(api)

        def list_raw(namespace: str) -> bytes:
            # undecoded: the client's model building would dominate the measurement
            reply = v1.list_namespaced_config_map(namespace, _preload_content=False)
            return bytes(reply.data)

        configmaps = dynamic.DynamicClient(api).resources.get(api_version="v1", kind="ConfigMap")
        for total in (100, 10_000):
            seed(emu, total)
            rows.append(
                (
                    total,
                    "get",
                    *measure(rounds, lambda i: v1.read_namespaced_config_map(f"cm-{i % 100}", "bench-0")),
                )
            )
            rows.append((total, "list (100 in ns)", *measure(rounds, lambda i: list_raw("bench-0"))))

            def apply(i: int) -> object:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"applied-{i % 50}", "namespace": "bench-0"},
                    "data": {"round": str(i)},
                }
                return configmaps.server_side_apply(body=body, namespace="bench-0", field_manager="bench")

            rows.append((total, "apply (SSA)", *measure(rounds, apply)))
        api.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    rows = run(args.rounds)
    print(f"{'objects':>8}  {'operation':<18} {'p50 ms':>8} {'p99 ms':>8}")
    for total, name, p50, p99 in rows:
        print(f"{total:>8}  {name:<18} {p50:>8.2f} {p99:>8.2f}")
    by_key = {(t, n): p50 for t, n, p50, _ in rows}
    for name in ("get", "list (100 in ns)", "apply (SSA)"):
        print(f"p50 ratio 10,000/100 objects, {name}: {by_key[(10_000, name)] / by_key[(100, name)]:.2f}x")


if __name__ == "__main__":
    main()
