"""`sluice reconcile|suspend|resume <kind> NAME`, with flux's progress lines.

reconcile: set `reconcile.fluxcd.io/requestedAt`, wait until `status.lastHandledReconcileAt`
equals it, then print the outcome from the Ready condition. suspend: set `spec.suspend`.
resume: clear it, request a reconcile and wait for it like flux does.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from libs.cli.kinds import with_kube
from libs.common.api import meta
from libs.common.api.meta import FluxObject
from libs.common.api.registry import UnknownKind, kind_for
from libs.common.kube import Kube, KubeError

FIELD_MANAGER = "sluice"
POLL_INTERVAL = 0.2


class ReconcileFailed(RuntimeError):
    """The object could not be reconciled in time (or does not exist)."""


def _say(line: str) -> None:
    print(line, flush=True)


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == meta.READY), None)


def _success_line(obj: dict[str, Any]) -> str:
    """What flux prints once an object reconciled, per kind."""
    status = obj.get("status") or {}
    kind = obj.get("kind")
    ready = _ready(obj) or {}
    if kind == "Kustomization":
        return f"applied revision {status.get('lastAppliedRevision', '')}"
    if kind == "ImageRepository":
        return f"scan fetched {(status.get('lastScanResult') or {}).get('tagCount', 0)} tags"
    if kind == "ImagePolicy":
        ref = status.get("latestRef") or {}
        return f"selected image {ref.get('name', '')}:{ref.get('tag', '')}"
    if kind == "ImageUpdateAutomation":
        return str(ready.get("message") or "automation run complete")
    revision = (status.get("artifact") or {}).get("revision")
    return f"fetched revision {revision}" if revision else str(ready.get("message", "reconciled"))


async def _get(kube: Kube, kind: type[FluxObject], name: str, namespace: str) -> dict[str, Any]:
    obj = await kube.get(kind.api_version(), kind.KIND, name, namespace)
    if obj is None:
        raise ReconcileFailed(f"{kind.KIND} {namespace}/{name} not found")
    return obj


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def _request(
    kube: Kube, kind: type[FluxObject], name: str, namespace: str, spec: dict[str, Any] | None = None
) -> str:
    """Set the requestedAt annotation (and `spec`, in the same patch); returns its value."""
    await _get(kube, kind, name, namespace)
    requested = _now()
    patch: dict[str, Any] = {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: requested}}}
    if spec is not None:
        patch["spec"] = spec
    await kube.patch(
        kind.api_version(), kind.KIND, name, patch, namespace=namespace, field_manager=FIELD_MANAGER
    )
    return requested


async def _annotate(kube: Kube, kind: type[FluxObject], name: str, namespace: str) -> str:
    _say(f"► annotating {kind.KIND} {name} in {namespace} namespace")
    requested = await _request(kube, kind, name, namespace)
    _say(f"✔ {kind.KIND} annotated")
    return requested


async def _wait_handled(
    kube: Kube, kind: type[FluxObject], name: str, namespace: str, requested: str, deadline: float
) -> bool:
    """Wait for the reconcile of `requested`; print ✔/✗ and return whether it ended Ready."""
    _say(f"◎ waiting for {kind.KIND} reconciliation")
    while True:
        obj = await _get(kube, kind, name, namespace)
        status = obj.get("status") or {}
        if status.get("lastHandledReconcileAt") == requested:
            ready = _ready(obj)
            if ready is not None and ready.get("status") == meta.CONDITION_TRUE:
                _say(f"✔ {_success_line(obj)}")
                return True
            if ready is not None and ready.get("status") == meta.CONDITION_FALSE:
                _say(f"✗ {ready.get('message', '')}")
                return False
        if time.monotonic() > deadline:
            raise ReconcileFailed(f"timed out waiting for {kind.KIND} {namespace}/{name} to be reconciled")
        await asyncio.sleep(POLL_INTERVAL)


async def _reconcile(
    kube: Kube, kind: type[FluxObject], name: str, namespace: str, with_source: bool, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    obj = await _get(kube, kind, name, namespace)
    if (obj.get("spec") or {}).get("suspend"):
        raise ReconcileFailed(f"{kind.KIND} {namespace}/{name} is suspended")
    if with_source:
        ref = (obj.get("spec") or {}).get("sourceRef") or {}
        group = "source.toolkit.fluxcd.io/v1"
        try:
            source = kind_for(ref.get("apiVersion") or group, ref.get("kind", "GitRepository"))
        except UnknownKind as exc:
            raise ReconcileFailed(str(exc)) from None
        source_ns = ref.get("namespace") or namespace
        requested = await _annotate(kube, source, ref["name"], source_ns)
        if not await _wait_handled(kube, source, ref["name"], source_ns, requested, deadline):
            return False
    requested = await _annotate(kube, kind, name, namespace)
    return await _wait_handled(kube, kind, name, namespace, requested, deadline)


def _run(kubeconfig: str | None, context: str | None, work: Any) -> int:
    try:
        ok = with_kube(kubeconfig, context, work)
    except (ReconcileFailed, KubeError) as exc:
        _say(f"✗ {exc}")
        return 1
    return 0 if ok else 1


def reconcile(
    kubeconfig: str | None,
    context: str | None,
    kind: type[FluxObject],
    name: str,
    namespace: str,
    *,
    with_source: bool = False,
    timeout: float = 300.0,
) -> int:
    return _run(
        kubeconfig, context, lambda kube: _reconcile(kube, kind, name, namespace, with_source, timeout)
    )


async def _set_suspend(kube: Kube, kind: type[FluxObject], name: str, namespace: str, value: bool) -> None:
    await _get(kube, kind, name, namespace)
    await kube.patch(
        kind.api_version(),
        kind.KIND,
        name,
        {"spec": {"suspend": value}},
        namespace=namespace,
        field_manager=FIELD_MANAGER,
    )


def suspend(
    kubeconfig: str | None, context: str | None, kind: type[FluxObject], name: str, namespace: str
) -> int:
    async def work(kube: Kube) -> bool:
        _say(f"► suspending {kind.KIND} {name} in {namespace} namespace")
        await _set_suspend(kube, kind, name, namespace, True)
        _say(f"✔ {kind.KIND} suspended")
        return True

    return _run(kubeconfig, context, work)


def resume(
    kubeconfig: str | None,
    context: str | None,
    kind: type[FluxObject],
    name: str,
    namespace: str,
    *,
    wait: bool = True,
    timeout: float = 300.0,
) -> int:
    async def work(kube: Kube) -> bool:
        deadline = time.monotonic() + timeout
        _say(f"► resuming {kind.KIND} {name} in {namespace} namespace")
        requested = await _request(kube, kind, name, namespace, {"suspend": False})
        _say(f"✔ {kind.KIND} resumed")
        if not wait:
            return True
        return await _wait_handled(kube, kind, name, namespace, requested, deadline)

    return _run(kubeconfig, context, work)
