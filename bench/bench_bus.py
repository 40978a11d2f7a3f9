"""The bus on a real nats-server: publish latency, publish → handler latency, throughput.

Every Sluice hop rides on this path, so its p50/p99 bound how fast a tag can reach the cluster.

    .venv/bin/python bench/bench_bus.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from percentiles import pct  # bench/percentiles.py (the scripts run from bench/)

from libs.common.bus import Bus, Delivery
from libs.common.events import ObjectRef, ReconcileRequest
from libs.devservers.nats import NatsServer


def request(n: int) -> ReconcileRequest:
    ref = ObjectRef(
        api_version="source.toolkit.fluxcd.io/v1", kind="GitRepository", namespace="bench", name=f"o{n}"
    )
    return ReconcileRequest(object=ref, reason="changed", generation=n)


async def run(url: str, messages: int) -> None:
    publisher = await Bus.connect(url, service="bench-pub")
    consumer = await Bus.connect(url, service="bench-sub")
    sent: dict[int, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def handle(req: ReconcileRequest, _: Delivery) -> None:
        latencies.append(time.perf_counter() - sent[req.generation or 0])
        if len(latencies) == messages:
            done.set()

    consumer.subscribe("bench", "sluice.reconcile.request.>", ReconcileRequest, handle, concurrency=16)
    await asyncio.sleep(0.5)
    publish: list[float] = []
    started = time.perf_counter()
    for n in range(messages):
        t0 = time.perf_counter()
        sent[n] = t0
        await publisher.publish(request(n))
        publish.append(time.perf_counter() - t0)
        if n % 50 == 49:
            await asyncio.sleep(0)  # let the consumer interleave, as in a live system
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await publisher.close()
    await consumer.close()

    print(f"messages: {messages}  (one publisher, one consumer, nats-server on loopback)")
    print(f"{'':28}{'p50':>10}{'p99':>10}{'mean':>10}")
    for label, values in (("publish (PubAck)", publish), ("publish → handler", latencies)):
        print(
            f"{label:28}{pct(values, 50) * 1000:>8.2f}ms{pct(values, 99) * 1000:>8.2f}ms"
            f"{statistics.fmean(values) * 1000:>8.2f}ms"
        )
    print(f"throughput: {messages / elapsed:,.0f} messages/s end to end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp) / "nats") as server:
        asyncio.run(run(server.url, args.messages))


if __name__ == "__main__":
    main()
