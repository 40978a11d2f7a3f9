"""`sluice tree kustomization NAME`: a Kustomization's inventory as a tree, like `flux tree`.

The inventory is `status.inventory.entries[].id` = `<namespace>_<name>_<group>_<kind>`. Entries
that are Kustomizations themselves are expanded with their own inventory, recursively; one the
inventory names but the cluster no longer has is shown without children. `--compact` keeps only
Flux objects; `-o json|yaml` prints the tree as data in flux's shape
(`{"resource": {"Namespace", "Name", "GroupKind": {"Group", "Kind"}}, "resources": [...]}`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from libs.common.api.inventory import InventoryId
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.kube import Kube, KubeError

FLUX_GROUP_SUFFIX = "toolkit.fluxcd.io"
KUSTOMIZE_GROUP = Kustomization.api_version().split("/")[0]

MIDDLE, LAST, CONTINUE, EMPTY = "├── ", "└── ", "│   ", "    "


class TreeError(RuntimeError):
    """The tree cannot be drawn; the message says why and what to do."""


@dataclass
class Node:
    """One object of an inventory and, for a Kustomization, what its own inventory holds."""

    kind: str
    group: str
    namespace: str
    name: str
    children: list[Node] = field(default_factory=list)

    def text(self) -> str:
        """`Kind/namespace/name`, or `Kind/name` for cluster-scoped objects (flux's wording)."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def data(self) -> dict[str, Any]:
        """Flux's JSON shape of a tree node (`resources` left out when empty)."""
        doc: dict[str, Any] = {
            "resource": {
                "Namespace": self.namespace,
                "Name": self.name,
                "GroupKind": {"Group": self.group, "Kind": self.kind},
            }
        }
        if self.children:
            doc["resources"] = [child.data() for child in self.children]
        return doc

    @property
    def is_kustomization(self) -> bool:
        return self.group == KUSTOMIZE_GROUP and self.kind == Kustomization.KIND


def parse_entry(entry_id: str) -> Node:
    """An inventory id `<namespace>_<name>_<group>_<kind>`, read as Flux reads it."""
    try:
        namespace, name, group, kind = InventoryId.parse(entry_id)
    except ValueError:
        raise TreeError(f"inventory entry {entry_id!r} is not <namespace>_<name>_<group>_<kind>") from None
    return Node(kind=kind, group=group, namespace=namespace, name=name)


def render(root: Node) -> str:
    """The tree drawn with flux's box characters, one object per line."""
    lines = [root.text()]
    _render_children(root.children, "", lines)
    return "\n".join(lines) + "\n"


def _render_children(children: list[Node], prefix: str, lines: list[str]) -> None:
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines.append(f"{prefix}{LAST if last else MIDDLE}{child.text()}")
        _render_children(child.children, prefix + (EMPTY if last else CONTINUE), lines)


async def build_tree(kube: Kube, name: str, namespace: str, *, compact: bool = False) -> Node:
    """The tree of Kustomization `namespace/name`; TreeError when it does not exist."""
    obj = await kube.get(Kustomization.api_version(), Kustomization.KIND, name, namespace)
    if obj is None:
        raise TreeError(
            f"Kustomization {namespace}/{name} not found: list them with `sluice get kustomizations -A`"
        )
    root = Node(Kustomization.KIND, KUSTOMIZE_GROUP, namespace, name)
    await _expand(kube, root, obj, compact, seen={(namespace, name)})
    return root


async def _expand(
    kube: Kube, node: Node, obj: dict[str, Any], compact: bool, seen: set[tuple[str, str]]
) -> None:
    entries = ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []
    for entry in entries:
        child = parse_entry(str(entry.get("id", "")))
        if compact and not child.group.endswith(FLUX_GROUP_SUFFIX):
            continue
        node.children.append(child)
        key = (child.namespace, child.name)
        if not child.is_kustomization or key in seen:
            continue  # a Kustomization listing an ancestor would otherwise recurse forever
        nested = await kube.get(Kustomization.api_version(), Kustomization.KIND, child.name, child.namespace)
        if nested is not None:
            await _expand(kube, child, nested, compact, seen | {key})


def output(root: Node, fmt: str | None) -> str:
    if fmt == "json":
        return json.dumps(root.data(), indent=2) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(root.data(), sort_keys=False))
    return render(root)


def _say(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    async def work() -> str:
        kube = Kube.from_config(args.kubeconfig, context=args.context)
        try:
            root = await build_tree(kube, args.name, args.namespace, compact=args.compact)
        finally:
            await kube.close()
        return output(root, args.output)

    try:
        text = asyncio.run(work())
    except (TreeError, KubeError) as exc:
        _say(f"✗ {exc}")
        return 1
    print(text, end="", flush=True)
    return 0


def add_parsers(sub: Any) -> None:
    """Register `tree kustomization NAME` on the top-level subparsers."""
    p = sub.add_parser("tree", help="print the resources reconciled by a Flux object, as a tree")
    kinds = p.add_subparsers(dest="tree_kind", required=True, metavar="KIND")
    ks = kinds.add_parser(
        "kustomization",
        aliases=["ks", "kustomizations"],
        help="print the resource inventory of a Kustomization",
    )
    ks.add_argument("name", metavar="NAME", help="the Kustomization")
    ks.add_argument("--compact", action="store_true", help="list Flux resources only")
    ks.add_argument("-o", "--output", choices=["json", "yaml"], help="print the tree as json or yaml")
