"""`sluice`: the command line, shaped like `flux`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libs.cli import bootstrap as bootstrap_cmd
from libs.cli import check as check_cmd
from libs.cli import create as create_cmd
from libs.cli import inspect as inspect_cmd
from libs.cli import install as install_cmd
from libs.cli import up as up_cmd
from libs.cli.version import VERSION

#: Command modules that register their own subcommands: each has `add_parsers(sub)` and
#: `COMMANDS`, a map from the top-level command name to `run(args) -> exit code`.
PLUGGED = (install_cmd, check_cmd, bootstrap_cmd, inspect_cmd)


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
        "words",
        nargs="+",
        metavar="KIND [NAME]",
        help="`sources git`, `kustomizations`, `images all|repository|policy|update`, "
        "any plural or short name (gitrepository, ks, imagepolicy …) or 'all'; then an optional NAME",
    )
    p_get.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")

    create_cmd.add_parsers(sub)

    timeout_help = "how long to wait for the reconciliation (5m)"
    p_rec = sub.add_parser("reconcile", help="request a reconciliation now and wait for its outcome")
    p_rec.add_argument(
        "words",
        nargs="+",
        metavar="KIND NAME",
        help="`source git NAME`, `kustomization NAME`, `image repository|policy|update NAME`",
    )
    p_rec.add_argument("--with-source", action="store_true", help="reconcile the source first")
    p_rec.add_argument("--timeout", default="5m", help=timeout_help)

    p_sus = sub.add_parser("suspend", help="suspend reconciliation of an object (spec.suspend)")
    p_sus.add_argument("words", nargs="+", metavar="KIND NAME", help="e.g. `kustomization apps`")

    p_res = sub.add_parser("resume", help="resume reconciliation of an object and wait until it is Ready")
    p_res.add_argument("words", nargs="+", metavar="KIND NAME", help="e.g. `image update app`")
    p_res.add_argument("--wait", default=True, action=argparse.BooleanOptionalAction, help="wait (yes)")
    p_res.add_argument("--timeout", default="5m", help=timeout_help)

    p_ev = sub.add_parser("events", help="follow Flux events from NATS (sluice.event.>)")
    p_ev.add_argument("--for", dest="for_", metavar="KIND/NAME", help="only events about this object")
    p_ev.add_argument("-A", "--all-namespaces", action="store_true", help="events from every namespace")
    p_ev.add_argument("-o", "--output", choices=["human", "json"], default="human", help="line format")
    p_ev.add_argument("--nats", help="NATS URL (default $SLUICE_NATS_URL, else .run/endpoints.json)")
    p_ev.add_argument("--since", metavar="DURATION", help="first replay events newer than this (e.g. 1h)")
    p_ev.add_argument("--count", type=int, help="exit after printing this many events")

    for module in PLUGGED:
        module.add_parsers(sub)

    sub.add_parser("version", help="print the version")
    _accept_global_options_anywhere(parser)
    return parser


def _accept_global_options_anywhere(parser: argparse.ArgumentParser) -> None:
    """Like kubectl and flux: `--kubeconfig`, `--context` and `-n` also after the command
    (`sluice get ks -n apps`). Leaf parsers get them with suppressed defaults, so the top-level
    values stand unless the option is given there."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in {id(p): p for p in action.choices.values()}.values():
                if any(isinstance(a, argparse._SubParsersAction) for a in child._actions):
                    _accept_global_options_anywhere(child)
                    continue
                child.add_argument("--kubeconfig", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                child.add_argument("--context", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                child.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


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
        return get(args.kubeconfig, args.context, args.words, namespace)
    if args.command == "create":
        return create_cmd.create(args)
    if args.command in ("reconcile", "suspend", "resume"):
        return _object_command(args)
    if args.command == "events":
        from libs.cli.events import events

        namespace = None if args.all_namespaces else args.namespace
        return events(
            args.nats,
            selector=args.for_,
            namespace=namespace,
            output=args.output,
            since=args.since,
            count=args.count,
        )
    for module in PLUGGED:
        if args.command in module.COMMANDS:
            return int(module.COMMANDS[args.command](args))
    if args.command == "version":
        print(f"sluice {VERSION}")
        return 0
    return 2


def _object_command(args: argparse.Namespace) -> int:
    from libs.cli import reconcile as rec
    from libs.cli.kinds import split_kind_name
    from libs.common.api.duration import parse_duration
    from libs.common.api.registry import UnknownKind

    try:
        kind, name = split_kind_name(args.words)
        timeout = parse_duration(args.timeout) if hasattr(args, "timeout") else 0.0
    except (UnknownKind, ValueError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    if args.command == "reconcile":
        return rec.reconcile(
            args.kubeconfig,
            args.context,
            kind,
            name,
            args.namespace,
            with_source=args.with_source,
            timeout=timeout,
        )
    if args.command == "suspend":
        return rec.suspend(args.kubeconfig, args.context, kind, name, args.namespace)
    return rec.resume(
        args.kubeconfig, args.context, kind, name, args.namespace, wait=args.wait, timeout=timeout
    )


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
