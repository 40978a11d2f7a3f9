"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.common.api.crd import crd_documents
from libs.common.kube import Kube
from libs.kube_emulator import KubeEmulator


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return that; fail with
    `what` named after `timeout` seconds. The one way tests wait: with a deadline, never a bare sleep."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if asyncio.iscoroutine(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@contextlib.asynccontextmanager
async def emulated_cluster(
    directory: Path, namespaces: Sequence[str] = ("flux-system",)
) -> AsyncIterator[Cluster]:
    """A Kubernetes emulator on this event loop with Sluice's CRDs installed and `namespaces`
    created; yields its kubeconfig path and a client."""
    async with KubeEmulator() as emu:
        kubeconfig = str(emu.write_kubeconfig(directory / "kubeconfig"))
        kube = Kube.from_config(kubeconfig)
        try:
            for crd in crd_documents():
                await kube.apply(crd, field_manager="test")
            for ns in namespaces:
                await kube.apply(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, field_manager="test"
                )
            yield Cluster(kubeconfig, kube)
        finally:
            await kube.close()


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    kube: Kube


async def run_cli(*argv: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run `sluice ARGV…` as a user would, in its own process (it runs its own event loop), with
    no stdin; returns the exit status and stdout+stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "libs.cli.main", *argv,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode()
