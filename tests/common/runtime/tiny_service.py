"""A tiny service on ServiceRuntime, run as a real process by test_service.py.

TINY_MODE picks how it treats a stop request:
- ``graceful``: keeps "working" until stopping, then finishes its in-flight item when SIGUSR1
  arrives (so a test can look at the draining process first) and returns;
- ``stubborn``: never looks at ``stopping`` (it is cancelled when the grace period is over);
- ``crash``: fails right after starting.
"""

from __future__ import annotations

import asyncio
import os
import signal

from libs.common.runtime.service import ServiceRuntime, run_service
from libs.common.runtime.settings import Settings


async def serve(runtime: ServiceRuntime[Settings]) -> None:
    mode = os.environ.get("TINY_MODE", "graceful")

    async def always_ready() -> bool:
        return True

    runtime.add_check("work", always_ready)
    released = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, released.set)
    log = runtime.log.bind(kind="Tiny", namespace="default", name="tiny")
    if mode == "crash":
        raise RuntimeError("cannot reach https://admin:hunter2@nats.example")
    if mode == "stubborn":
        log.info("working, not listening")
        await asyncio.Event().wait()
    with runtime.tracing.span("work item") as span:
        runtime.metrics.observe_reconcile("Tiny", "success", 0.01)
        log.info("working", extra={"span": format(span.get_span_context().span_id, "016x")})
        await runtime.stopping.wait()
        log.info("finishing in-flight work", extra={"grace_remaining": runtime.grace_remaining()})
        await released.wait()
    log.info("in-flight work done")


def main() -> None:
    run_service(serve, Settings)


if __name__ == "__main__":
    main()
