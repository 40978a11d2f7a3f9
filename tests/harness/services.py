"""Run a Sluice service in-process, exactly as its `__main__` would, for integration tests.

    async with running_service(SPEC, nats_url=nats_url, kubeconfig=str(kubeconfig)) as svc:
        ...  # talk to it through Kubernetes and NATS, as users and other services do
        svc.url  # its /healthz, /readyz, /metrics server

The runner itself lives in `libs.common.app.in_process` (benchmarks use it too).
"""

from libs.common.app import InProcess as RunningService
from libs.common.app import in_process as running_service

__all__ = ["RunningService", "running_service"]
