"""`sluice get <kind>|all [NAME] [-A]`: tables like `flux get`.

Kinds are named like flux (`sources git`, `kustomizations`, `images all|repository|policy|update`)
or by any plural/short name (`gitrepo`, `ks`, `imagepolicy`). Columns follow flux per kind: NAME,
REVISION (LAST SCAN for ImageRepository, LATEST IMAGE for ImagePolicy, LAST RUN for
ImageUpdateAutomation), SUSPENDED (not for ImagePolicy), READY, MESSAGE.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from libs.cli.kinds import IMAGE_KINDS, resolve
from libs.common.api import meta
from libs.common.api.meta import FluxObject
from libs.common.api.registry import STORAGE_KINDS, UnknownKind
from libs.common.kube import Kube, NotFound


def _revision(status: dict[str, Any]) -> str:
    artifact = status.get("artifact") or {}
    return str(
        artifact.get("revision")
        or status.get("lastAppliedRevision")
        or (status.get("latestRef") or {}).get("tag")
        or status.get("latestImage")
        or status.get("lastPushCommit")
        or ""
    )


def _latest_image(status: dict[str, Any]) -> str:
    ref = status.get("latestRef") or {}
    if not ref.get("tag"):
        return str(status.get("latestImage") or "")
    image = f"{ref.get('name', '')}:{ref['tag']}"
    return f"{image}@{ref['digest']}" if ref.get("digest") else image


#: The second column per kind, as flux names it, and how to read it from the status.
_COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "ImageRepository": ("LAST SCAN", lambda st: str((st.get("lastScanResult") or {}).get("scanTime") or "")),
    "ImagePolicy": ("LATEST IMAGE", _latest_image),
    "ImageUpdateAutomation": ("LAST RUN", lambda st: str(st.get("lastAutomationRunTime") or "")),
}

#: Kinds whose flux table has no SUSPENDED column.
_NO_SUSPEND = {"ImagePolicy"}


def _header(kind: str, all_namespaces: bool) -> list[str]:
    second = _COLUMNS.get(kind, ("REVISION", _revision))[0]
    suspended = [] if kind in _NO_SUSPEND else ["SUSPENDED"]
    return (["NAMESPACE"] if all_namespaces else []) + ["NAME", second, *suspended, "READY", "MESSAGE"]


def _row(obj: dict[str, Any], all_namespaces: bool) -> list[str]:
    md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    kind = str(obj.get("kind", ""))
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == meta.READY), None)
    row = [md.get("namespace", "")] if all_namespaces else []
    row += [md.get("name", ""), _COLUMNS.get(kind, ("REVISION", _revision))[1](status)]
    if kind not in _NO_SUSPEND:
        row.append("True" if spec.get("suspend") else "False")
    row += [
        ready.get("status", "Unknown") if ready else "Unknown",
        (ready.get("message", "") if ready else "waiting to be reconciled").replace("\n", " "),
    ]
    return row


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


async def _get(kube: Kube, kinds: list[type[FluxObject]], name: str | None, namespace: str | None) -> str:
    out: list[str] = []
    all_ns = namespace is None
    for kind in kinds:
        header = _header(kind.KIND, all_ns)
        try:
            items, _ = await kube.list_objects(kind.api_version(), kind.KIND, namespace)
        except NotFound:
            continue
        if name:
            items = [i for i in items if i["metadata"]["name"] == name]
        if not items:
            continue
        rows = [
            _row(i, all_ns)
            for i in sorted(items, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"]))
        ]
        if len(kinds) > 1:
            rows = [
                [
                    *r[: 1 if all_ns else 0],
                    f"{kind.SINGULAR}/{r[1 if all_ns else 0]}",
                    *r[2 if all_ns else 1 :],
                ]
                for r in rows
            ]
        out.append(_table(rows, header))
    return "\n\n".join(out)


_SOURCE_KINDS = ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket")


def parse_words(words: list[str]) -> tuple[list[type[FluxObject]], str | None, str]:
    """`["images", "policy", "app"]` → ([ImagePolicy], "app", "images policy")."""
    first = words[0].lower()
    if first in ("source", "sources", "image", "images") and len(words) >= 2:
        what, rest = " ".join(words[:2]), words[2:]
        if words[1].lower() == "all":
            wanted = _SOURCE_KINDS if first.startswith("source") else [k.KIND for k in IMAGE_KINDS]
            kinds = [k for k in STORAGE_KINDS if k.KIND in wanted]
        else:
            kinds = [resolve(words[:2])]
    else:
        what, rest = words[0], words[1:]
        kinds = list(STORAGE_KINDS) if first == "all" else [resolve(words[:1])]
    if len(rest) > 1:
        raise UnknownKind(f"unexpected arguments {' '.join(rest[1:])!r}")
    return kinds, (rest[0] if rest else None), what


def get(kubeconfig: str | None, context: str | None, words: list[str], namespace: str | None) -> int:
    try:
        kinds, name, what = parse_words(words)
    except UnknownKind as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1

    async def run() -> str:
        kube = Kube.from_config(kubeconfig, context=context)
        try:
            return await _get(kube, kinds, name, namespace)
        finally:
            await kube.close()

    text = asyncio.run(run())
    print(text if text else f"no {what} objects found")
    return 0
