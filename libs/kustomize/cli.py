"""``build DIR``: print the built YAML, or ``Error: <message>`` on stderr with exit status 1."""

from __future__ import annotations

import argparse
import sys

from libs.kustomize import KustomizeError, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kustomize", description="Build a kustomization directory.")
    sub = parser.add_subparsers(dest="command", required=True)
    build_parser = sub.add_parser("build", help="print the resources a kustomization produces")
    build_parser.add_argument("dir", nargs="?", default=".", help="kustomization directory (default: .)")
    args = parser.parse_args(argv)
    try:
        output = build(args.dir).to_yaml()
    except KustomizeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"Error: {message}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    sys.stdout.flush()
    return 0
