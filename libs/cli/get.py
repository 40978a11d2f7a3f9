"""`sluice get <kind>|all [NAME] [-A]`: tables like `flux get` (NAME, REVISION, SUSPENDED, READY, MESSAGE)."""

from __future__ import annotations

import asyncio
from typing import Any

from libs.common.api import meta
from libs.common.api.meta import FluxObject
from libs.common.api.registry import STORAGE_KINDS, UnknownKind, by_name
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


def _row(obj: dict[str, Any], all_namespaces: bool) -> list[str]:
    md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == meta.READY), None)
    row = [md.get("namespace", "")] if all_namespaces else []
    row += [
        md.get("name", ""),
        _revision(status),
        "True" if spec.get("suspend") else "False",
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
    header = (["NAMESPACE"] if all_ns else []) + ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    for kind in kinds:
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


def get(
    kubeconfig: str | None, context: str | None, what: str, name: str | None, namespace: str | None
) -> int:
    if what == "all":
        kinds = list(STORAGE_KINDS)
    else:
        try:
            kinds = [by_name(what)]
        except UnknownKind as exc:
            print(f"✗ {exc}")
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
