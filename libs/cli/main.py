"""`sluice`: the command line, shaped like `flux`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libs.cli import up as up_cmd

VERSION = "0.1.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="GitOps delivery for Kubernetes, driven by events."
    )
    parser.add_argument("--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", default="flux-system", help="namespace scope (default flux-system)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_up = sub.add_parser(
        "up", help="run the whole system locally (nats, Kubernetes emulator, registry, services)"
    )
    p_up.add_argument("--state-dir", type=Path, default=Path(".run"), help="where state and logs live (.run)")
    p_up.add_argument("--demo", action="store_true", help="seed the image-update demo once ready")

    p_k = sub.add_parser("kustomize", help="kustomize, in Python (output identical to kustomize v5)")
    ksub = p_k.add_subparsers(dest="kustomize_command", required=True, metavar="COMMAND")
    p_kb = ksub.add_parser("build", help="print the kustomize build of DIR")
    p_kb.add_argument("dir", help="a directory with a kustomization.yaml")

    p_get = sub.add_parser("get", help="list Flux objects with their readiness, like `flux get`")
    p_get.add_argument(
        "kind", help="a kind, plural or short name (gitrepository, ks, imagepolicy …) or 'all'"
    )
    p_get.add_argument("name", nargs="?", help="only this object")
    p_get.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")

    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return up_cmd.up(args.state_dir, demo=args.demo)
    if args.command == "kustomize":
        from libs.kustomize.cli import main as kustomize_main

        return int(kustomize_main(["build", args.dir]))
    if args.command == "get":
        from libs.cli.get import get

        namespace = None if args.all_namespaces else args.namespace
        return get(args.kubeconfig, args.context, args.kind, args.name, namespace)
    if args.command == "version":
        print(f"sluice {VERSION}")
        return 0
    return 2


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
