"""`python -m libs.kube_emulator` / `sluice-kube-emulator`: run the emulator as a process."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .emulator import KubeEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice-kube-emulator", description="A Kubernetes API server emulator on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state", type=Path, default=None, help="load on start, save on exit")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="write a kubeconfig here")
    parser.add_argument("--no-rollout", action="store_true", help="do not play controllers/kubelet")
    parser.add_argument(
        "--authorization",
        choices=("always-allow", "rbac"),
        default="always-allow",
        help="rbac: authenticate bearer tokens and enforce RBAC (default: allow everything)",
    )
    parser.add_argument("--tls", action="store_true", help="serve https with a fresh self-signed certificate")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    emu = KubeEmulator(
        host=args.host,
        port=args.port,
        state_file=args.state,
        rollout=not args.no_rollout,
        rbac=args.authorization == "rbac",
        tls=args.tls,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await emu.start()
    try:
        if args.kubeconfig is not None:
            emu.write_kubeconfig(args.kubeconfig)
        sys.stdout.write(emu.url + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await emu.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
