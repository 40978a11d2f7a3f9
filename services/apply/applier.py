"""Server-side apply in stages with a change set, garbage collection and health assessment.

What Flux's `fluxcd/pkg/ssa` ResourceManager does, over `libs.common.kube`:

- `apply_staged`: CRDs, Namespaces and ClusterRoles first (then wait until the CRDs are
  Established), then kinds named `*Class`, then the rest. Each object is compared with a dry-run
  apply first, so the change set says `created`, `configured` or `unchanged`, and only changed
  objects are written (field manager `sluice`, forcing conflicts: Sluice takes ownership like
  Flux). An invalid or immutable-field failure with `force` (spec or per-object annotation)
  deletes and recreates the object.
- `prune`: deletes objects that left the inventory, if they still carry the owner labels and are
  not `prune: disabled`; an object whose delete failed is returned so it stays in the inventory.
- `wait_healthy`: polls the objects with the kstatus rules until all are Current, one Failed, or
  the deadline passes.

Messages name objects as `Kind/namespace/name` and never carry Secret data.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from libs.common import names
from libs.common.events import Change
from libs.common.kube import Kube, KubeError, NotFound
from libs.common.runtime.redact import sanitize_message
from libs.kstatus import CURRENT, FAILED, CustomCheck, ObjectStatus, compute
from services.apply.manifests import (
    CRD_KIND,
    SSA_IF_NOT_PRESENT,
    SSA_IGNORE,
    Obj,
    ObjMeta,
    api_version_of,
    force_enabled,
    identity,
    owned_by,
    prune_disabled,
    reconcile_disabled,
    sort_key,
    ssa_policy,
    stage_of,
    version_of,
)

_IMMUTABLE = re.compile(r"is\simmutable|immutable\sfield|may not change once set|Forbidden: updates to")
_SECRET_KINDS = frozenset({"Secret"})
RECREATE_GRACE = 30.0
"""Seconds a force-recreated object may take to disappear before it is created again."""
# Fields the server owns that a dry-run may change without the object having drifted.
_VOLATILE_METADATA = ("managedFields", "resourceVersion")


@dataclass
class Entry:
    """One object of the change set, with what happened to it."""

    ident: ObjMeta
    version: str
    action: str

    def change(self) -> Change:
        return Change(
            kind=self.ident.kind,
            namespace=self.ident.namespace or None,
            name=self.ident.name,
            action=self.action,  # type: ignore[arg-type]
        )


@dataclass
class ApplyOutcome:
    entries: list[Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: list[Obj] = field(default_factory=list)
    """The objects written or found unchanged (not skipped): what `wait: true` health-checks."""


class ApplyFailed(Exception):
    pass


def describe_error(ident: ObjMeta, what: str, exc: Exception) -> str:
    """`Kind/ns/name <what> failed (<reason>): <message>` — Secrets get no server message at all."""
    reason = getattr(exc, "reason", "") or type(exc).__name__
    if ident.kind in _SECRET_KINDS:
        return f"{ident.display()} {what} failed ({reason})"
    return f"{ident.display()} {what} failed ({reason}): {sanitize_message(str(exc))}"


def _comparable(obj: Obj) -> Obj:
    # Status is not applied (bundles carry none) and controllers change it at any moment.
    doc = copy.deepcopy(obj)
    doc.pop("status", None)
    md = doc.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        md.pop(key, None)
    return doc


def _immutable(exc: KubeError) -> bool:
    # Like kubectl and fluxcd/pkg/ssa: a 422 Invalid (or 409) is what recreation can fix, plus
    # admission/CEL errors that say the field is immutable.
    return exc.code in (409, 422) or bool(_IMMUTABLE.search(str(exc)))


class Applier:
    def __init__(
        self, kube: Kube, *, concurrency: int = 8, poll: float = 0.5, field_manager: str = names.FIELD_MANAGER
    ) -> None:
        self.kube = kube
        self.poll = poll
        self.field_manager = field_manager
        self._sem = asyncio.Semaphore(max(1, concurrency))

    # --- apply ---------------------------------------------------------------------------------

    async def _normalize(self, obj: Obj) -> Obj:
        """Resolve the kind (a CRD applied a moment ago is found by a fresh discovery) and check
        its namespace: cluster-scoped objects lose a stray namespace, namespaced ones need one."""
        res = await self.kube.resource(obj["apiVersion"], obj["kind"])
        md = obj["metadata"]
        if not res.namespaced:
            md.pop("namespace", None)
        elif not md.get("namespace"):
            raise ApplyFailed(
                f"{obj['kind']}/{md['name']} namespace not specified: set metadata.namespace "
                "in the manifests or spec.targetNamespace"
            )
        return obj

    async def _recreate(self, obj: Obj, deadline: float) -> None:
        md = obj["metadata"]
        # Once deleted the object must come back, even when the run's timeout is almost spent.
        deadline = max(deadline, time.monotonic() + RECREATE_GRACE)
        await self.kube.delete(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        while (
            await self.kube.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace")) is not None
        ):
            if time.monotonic() > deadline:
                raise ApplyFailed(
                    f"{identity(obj).display()} was deleted for recreation but is still terminating"
                )
            await asyncio.sleep(self.poll / 5)
        await self.kube.apply(obj, field_manager=self.field_manager, force=True)

    async def _apply_one(self, obj: Obj, force: bool, deadline: float) -> str:
        if reconcile_disabled(obj) or ssa_policy(obj) == SSA_IGNORE:
            return "skipped"
        obj = await self._normalize(obj)
        md = obj["metadata"]
        existing = await self.kube.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
        if existing is None:
            await self.kube.apply(obj, field_manager=self.field_manager, force=True)
            return "created"
        if ssa_policy(obj) == SSA_IF_NOT_PRESENT:
            return "skipped"
        try:
            dry = await self.kube.apply(obj, field_manager=self.field_manager, force=True, dry_run=True)
        except KubeError as exc:
            if (force or force_enabled(obj)) and _immutable(exc):
                await self._recreate(obj, deadline)
                return "created"
            raise
        if _comparable(dry) == _comparable(existing):
            return "unchanged"
        try:
            await self.kube.apply(obj, field_manager=self.field_manager, force=True)
        except KubeError as exc:
            if (force or force_enabled(obj)) and _immutable(exc):
                await self._recreate(obj, deadline)
                return "created"
            raise
        return "configured"

    async def _guarded(self, obj: Obj, force: bool, deadline: float) -> tuple[Obj, str | None, str]:
        """(object, action or None, error message)."""
        async with self._sem:
            try:
                return obj, await self._apply_one(obj, force, deadline), ""
            except ApplyFailed as exc:
                return obj, None, str(exc)
            except NotFound as exc:
                ident = identity(obj)
                if "does not serve" in str(exc):
                    return (
                        obj,
                        None,
                        (
                            f"{ident.display()} apply failed: no matches for kind {ident.kind!r} "
                            f"in version {obj['apiVersion']!r}"
                        ),
                    )
                return obj, None, describe_error(ident, "apply", exc)
            except KubeError as exc:
                return obj, None, describe_error(identity(obj), "apply", exc)

    async def _wait_crds(self, crds: Sequence[Obj], deadline: float) -> list[str]:
        pending = list(crds)
        while pending:
            still: list[Obj] = []
            for crd in pending:
                live = await self.kube.get(crd["apiVersion"], CRD_KIND, crd["metadata"]["name"])
                st = compute(live)
                if st.status == FAILED:
                    return [f"{identity(crd).display()} is not established: {st.message}"]
                if st.status != CURRENT:
                    still.append(crd)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    return [f"timeout waiting for {identity(c).display()} to be established" for c in pending]
                await asyncio.sleep(self.poll / 5)
        return []

    async def apply_staged(self, objects: Sequence[Obj], *, force: bool, deadline: float) -> ApplyOutcome:
        """Apply every object in Flux's stages; stop after the first stage with errors."""
        outcome = ApplyOutcome()
        ordered = sorted(objects, key=sort_key)
        for stage in (0, 1, 2):
            batch = [o for o in ordered if stage_of(o) == stage]
            if not batch:
                continue
            results = await asyncio.gather(*(self._guarded(o, force, deadline) for o in batch))
            for obj, action, error in results:
                if action is None:
                    outcome.errors.append(error)
                    continue
                outcome.entries.append(Entry(identity(obj), version_of(obj["apiVersion"]), action))
                if action != "skipped":
                    outcome.applied.append(obj)
            if outcome.errors:
                return outcome
            if stage == 0:
                crds = [o for o in batch if o["kind"] == CRD_KIND]
                outcome.errors.extend(await self._wait_crds(crds, deadline))
                if outcome.errors:
                    return outcome
        return outcome

    # --- prune ---------------------------------------------------------------------------------

    async def prune(
        self, stale: Sequence[tuple[ObjMeta, str]], *, owner: tuple[str, str], wait: float | None = None
    ) -> tuple[list[Entry], list[tuple[ObjMeta, str]], list[str]]:
        """Delete stale objects still labelled as ours. Returns (deleted, kept: delete failed, errors).

        With `wait` (seconds), waits that long for the deleted objects to disappear
        (deletionPolicy WaitForTermination)."""
        name, namespace = owner
        deleted: list[Entry] = []
        failed: list[tuple[ObjMeta, str]] = []
        errors: list[str] = []
        # Reverse apply order: workloads before their Namespaces and CRDs.
        ordered = sorted(
            stale,
            key=lambda item: sort_key(
                {
                    "apiVersion": api_version_of(item[0].group, item[1]),
                    "kind": item[0].kind,
                    "metadata": {"name": item[0].name, "namespace": item[0].namespace},
                }
            ),
            reverse=True,
        )
        for ident, version in ordered:
            api_version = api_version_of(ident.group, version)
            try:
                live = await self.kube.get(api_version, ident.kind, ident.name, ident.namespace or None)
            except NotFound:
                continue  # the kind itself is gone (its CRD was deleted)
            except KubeError as exc:
                failed.append((ident, version))
                errors.append(describe_error(ident, "prune", exc))
                continue
            if live is None or live.get("metadata", {}).get("deletionTimestamp"):
                continue
            if not owned_by(live, name, namespace) or prune_disabled(live):
                continue
            try:
                await self.kube.delete(api_version, ident.kind, ident.name, ident.namespace or None)
            except KubeError as exc:
                failed.append((ident, version))
                errors.append(describe_error(ident, "prune", exc))
                continue
            deleted.append(Entry(ident, version, "deleted"))
        if wait is not None and deleted:
            deadline = time.monotonic() + wait
            for entry in deleted:
                api_version = api_version_of(entry.ident.group, entry.version)
                while (
                    await self.kube.get(
                        api_version, entry.ident.kind, entry.ident.name, entry.ident.namespace or None
                    )
                    is not None
                ):
                    if time.monotonic() > deadline:
                        errors.append(f"timeout waiting for {entry.ident.display()} to be deleted")
                        failed.append((entry.ident, entry.version))
                        break
                    await asyncio.sleep(self.poll / 5)
        return deleted, failed, errors

    # --- health --------------------------------------------------------------------------------

    async def _status(self, ref: tuple[str, ObjMeta], custom: Sequence[CustomCheck]) -> ObjectStatus:
        api_version, ident = ref
        try:
            live = await self.kube.get(api_version, ident.kind, ident.name, ident.namespace or None)
        except NotFound:
            live = None
        for check in custom:
            if check.matches(api_version, ident.kind):
                return check.status(live)
        return compute(live)

    async def wait_healthy(
        self, refs: Sequence[tuple[str, ObjMeta]], *, timeout: float, custom: Sequence[CustomCheck] = ()
    ) -> tuple[bool, str]:
        """(healthy, message): Flux's texts, naming every object that is not Current. Objects
        matched by a `custom` check (healthCheckExprs) are judged by it instead of kstatus."""
        started = time.monotonic()
        while True:
            statuses = await asyncio.gather(*(self._status(ref, custom) for ref in refs))
            elapsed = time.monotonic() - started
            failed = [(ref, st) for ref, st in zip(refs, statuses, strict=True) if st.status == FAILED]
            waiting = [(ref, st) for ref, st in zip(refs, statuses, strict=True) if st.status != CURRENT]
            if not waiting:
                return True, f"Health check passed in {_seconds(elapsed)}"
            if failed:
                listed = ", ".join(
                    f"{ref[1].display()} status: '{st.status}': {st.message}" for ref, st in failed
                )
                return False, (
                    f"health check failed after {_seconds(elapsed)}: failed early due to stalled resources: [{listed}]"
                )
            if elapsed >= timeout:
                listed = ", ".join(
                    f"{ref[1].display()} status: '{st.status}': {st.message}" for ref, st in waiting
                )
                return (
                    False,
                    f"health check failed after {_seconds(elapsed)}: timeout waiting for: [{listed}]",
                )
            await asyncio.sleep(min(self.poll, max(0.0, timeout - elapsed)))


def _seconds(value: float) -> str:
    return f"{value:.3f}s" if value < 1 else f"{value:.1f}s"
