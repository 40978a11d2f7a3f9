"""The Kustomization reconciler: Flux's kustomize-controller pipeline (steps 5-9) over built bundles.

Steps, in order (each returns a Result to end the run, or None to go on):

1. `check_spec` — `healthCheckExprs` and `dependsOn[].readyExpr` are compiled (an invalid CEL
   expression stalls with `InvalidCELExpression`); fields Sluice cannot honour: `kubeConfig`
   stalls (applying a remote cluster's manifests to this one would be wrong), the others are
   recorded in the Ready message.
2. `newest_build` — the newest of the Kustomization's `build.ready` and `build.failed` on the
   stream: none yet → waiting; a failure newer than the last good build → failed with the build's
   reason and message, cluster untouched; a build of an older generation → waiting for the build.
3. `dependencies` — every `dependsOn` Kustomization Ready at its current generation and, when it
   uses the same source, applied at this build's revision. Re-checked when a dependency publishes
   `apply.done` (no fixed requeue); a long fallback retry keeps nothing waiting forever.
4. `apply` — download the bundle, label the objects, staged server-side apply with a change set,
   prune what left the inventory, health checks, status (inventory, revisions, history) and the
   `apply.done` event.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from libs.common import names
from libs.common.api import meta
from libs.common.api.duration import format_duration
from libs.common.api.kustomize.kustomization import HistorySnapshot, Kustomization
from libs.common.api.meta import ResourceInventory, ResourceRef
from libs.common.artifacts import ArtifactError, fetch_artifact
from libs.common.bus import Bus, Stored
from libs.common.events import ApplyDone, BuildFailed, BuildReady, Change, ObjectRef
from libs.common.events import subjects as subj
from libs.common.kube import Kube, KubeError
from libs.common.reconcile import Context, Reconciler, Result, summarize
from libs.common.reconcile.runner import status_json
from libs.common.runtime.redact import sanitize_message
from libs.kstatus import CelError, CustomCheck
from libs.kstatus.cel import Expression, parse
from services.apply.applier import Applier, Entry
from services.apply.manifests import (
    BundleError,
    Obj,
    ObjMeta,
    api_version_of,
    identity,
    read_bundle,
    set_owner,
    sort_key,
)

KIND = Kustomization.KIND
UNSUPPORTED_FIELD = "UnsupportedField"
HISTORY_LIMIT = 5
_STATE_ATTR = "_apply_run"


@dataclass
class _Run:
    """What one reconcile run learns in one step and uses in the next."""

    build: BuildReady | None = None
    notes: list[str] = field(default_factory=list)
    custom_checks: list[CustomCheck] = field(default_factory=list)
    ready_exprs: dict[int, Expression] = field(default_factory=dict)


def _run(ctx: Context[Kustomization]) -> _Run:
    state = getattr(ctx, _STATE_ATTR, None)
    if not isinstance(state, _Run):
        state = _Run()
        setattr(ctx, _STATE_ATTR, state)
    return state


def source_key(ks: Kustomization) -> tuple[str, str, str]:
    ref = ks.spec.source_ref
    return (ref.kind, ref.namespace or ks.namespace, ref.name)


def inventory_of(ks: Kustomization) -> list[tuple[ObjMeta, str]]:
    entries = ks.status.inventory.entries if ks.status.inventory else []
    found: list[tuple[ObjMeta, str]] = []
    for entry in entries:
        with contextlib.suppress(ValueError):
            found.append((ObjMeta.parse(entry.id), entry.v))
    return found


def make_inventory(items: list[tuple[ObjMeta, str]]) -> ResourceInventory:
    def key(item: tuple[ObjMeta, str]) -> tuple[int, str, str, str]:
        ident, version = item
        return sort_key(
            {
                "apiVersion": api_version_of(ident.group, version),
                "kind": ident.kind,
                "metadata": {"name": ident.name, "namespace": ident.namespace},
            }
        )

    unique: dict[str, tuple[ObjMeta, str]] = {}
    for ident, version in items:
        unique[ident.id] = (ident, version)
    ordered = sorted(unique.values(), key=key)
    return ResourceInventory(entries=[ResourceRef(id=i.id, v=v) for i, v in ordered])


def change_lines(entries: list[Entry]) -> str:
    """Flux's change set text: one `Kind/ns/name action` line per created/configured/deleted object."""
    return "\n".join(
        f"{e.ident.display()} {e.action}" for e in entries if e.action in ("created", "configured", "deleted")
    )


def _already_applied(ks: Kustomization, build: BuildReady) -> bool:
    """This exact bundle is the last one applied, and the object is Ready at its generation."""
    history = ks.status.history or []
    ready = meta.get_condition(ks.status.conditions, meta.READY)
    return bool(
        history
        and history[0].digest == build.digest
        and history[0].last_reconciled_status == meta.RECONCILIATION_SUCCEEDED
        and ks.status.last_applied_revision == build.revision
        and ready is not None
        and ready.status == meta.CONDITION_TRUE
        and ks.status.observed_generation == ks.generation
    )


def record_history(ks: Kustomization, digest: str, revision: str, status: str, duration: float) -> None:
    """Upsert `status.history` (newest first, at most 5, one entry per digest + status)."""
    now = meta.now_rfc3339()
    history = list(ks.status.history or [])
    for i, snap in enumerate(history):
        if snap.digest == digest and snap.last_reconciled_status == status:
            snap.last_reconciled = now
            snap.last_reconciled_duration = format_duration(round(duration, 3))
            snap.total_reconciliations += 1
            snap.metadata = {"revision": revision}
            history.insert(0, history.pop(i))
            break
    else:
        history.insert(
            0,
            HistorySnapshot(
                digest=digest,
                first_reconciled=now,
                last_reconciled=now,
                last_reconciled_duration=format_duration(round(duration, 3)),
                last_reconciled_status=status,
                total_reconciliations=1,
                metadata={"revision": revision},
            ),
        )
    ks.status.history = history[:HISTORY_LIMIT]


@dataclass
class KustomizationReconciler:
    bus: Bus
    kube: Kube
    max_bundle_bytes: int
    applier: Applier
    service: str = "apply"

    def reconciler(self) -> Reconciler[Kustomization]:
        return Reconciler(
            kind=Kustomization,
            steps=[self.check_spec, self.newest_build, self.dependencies, self.apply],
            finalize=[self.garbage_collect],
        )

    # --- 1. the spec: CEL expressions, fields we cannot honour -----------------------------------

    async def check_spec(self, ctx: Context[Kustomization]) -> Result | None:
        spec = ctx.obj.spec
        run = _run(ctx)
        if spec.kube_config is not None:
            return Result.stall(
                UNSUPPORTED_FIELD,
                "spec.kubeConfig is not supported by Sluice yet: remote clusters cannot be targeted, "
                "and nothing was applied",
            )
        try:
            for expr in spec.health_check_exprs or []:
                run.custom_checks.append(
                    CustomCheck.compile(
                        expr.api_version,
                        expr.kind,
                        current=expr.current,
                        in_progress=expr.in_progress,
                        failed=expr.failed,
                    )
                )
            for i, dep in enumerate(spec.depends_on or []):
                if dep.ready_expr:
                    try:
                        run.ready_exprs[i] = parse(dep.ready_expr)
                    except CelError as exc:
                        raise CelError(
                            f"readyExpr {dep.ready_expr!r} of dependency '{dep.name}': {exc}"
                        ) from None
        except CelError as exc:
            return Result.stall(meta.INVALID_CEL_EXPRESSION, f"invalid CEL expression: {exc}")
        if spec.service_account_name:
            run.notes.append(
                f"spec.serviceAccountName {spec.service_account_name!r} is not impersonated: "
                "objects were applied with the apply service's own identity"
            )
        if spec.ignore:
            run.notes.append(
                "spec.ignore rules are not supported: ignored fields are corrected like any drift"
            )
        return None

    # --- 2. the newest build ---------------------------------------------------------------------

    async def newest_build(self, ctx: Context[Kustomization]) -> Result | None:
        ks = ctx.obj
        retry = ks.spec.retry_interval_seconds()
        ready: Stored[BuildReady] | None = await self.bus.last_entry(
            subj.subject(names.BUILD_READY, KIND, ks.namespace, ks.name), BuildReady
        )
        failed: Stored[BuildFailed] | None = await self.bus.last_entry(
            subj.subject(names.BUILD_FAILED, KIND, ks.namespace, ks.name), BuildFailed
        )
        if failed is not None and (ready is None or failed.seq > ready.seq):
            build_failed = failed.payload
            if build_failed.generation < ks.generation:
                return Result.progressing(
                    f"building generation {ks.generation}", reason=meta.PROGRESSING, after=retry
                )
            if build_failed.revision:
                ctx.revision = build_failed.revision
                ks.status.last_attempted_revision = build_failed.revision
            return Result.failed(
                build_failed.reason or meta.BUILD_FAILED, sanitize_message(build_failed.message), after=retry
            )
        if ready is None:
            return Result.progressing("waiting for the build", reason=meta.PROGRESSING, after=retry)
        if ready.payload.generation < ks.generation:
            return Result.progressing(
                f"building generation {ks.generation}", reason=meta.PROGRESSING, after=retry
            )
        _run(ctx).build = ready.payload
        ctx.revision = ready.payload.revision
        if ctx.trigger == "changed" and _already_applied(ks, ready.payload):
            # A repeated or stale build event (redelivered, or overtaken by a newer one that is
            # already applied) is a no-op; drift is corrected by interval and requestedAt runs.
            ctx.unchanged = True
            ready_condition = meta.get_condition(ks.status.conditions, meta.READY)
            message = (
                ready_condition.message if ready_condition else f"Applied revision: {ready.payload.revision}"
            )
            return Result.ready(message, reason=meta.RECONCILIATION_SUCCEEDED)
        return None

    # --- 3. dependencies -------------------------------------------------------------------------

    async def dependencies(self, ctx: Context[Kustomization]) -> Result | None:
        ks = ctx.obj
        build = _run(ctx).build
        assert build is not None
        for index, dep in enumerate(ks.spec.depends_on or []):
            dep_ns = dep.namespace or ks.namespace
            name = f"{dep_ns}/{dep.name}"
            raw = await self.kube.get(Kustomization.api_version(), KIND, dep.name, dep_ns)
            waiting = Result.progressing(
                f"dependency '{name}' is not ready",
                reason=meta.DEPENDENCY_NOT_READY,
                after=ks.spec.retry_interval_seconds(),
            )
            if raw is None:
                return Result.progressing(
                    f"dependency '{name}' not found",
                    reason=meta.DEPENDENCY_NOT_READY,
                    after=ks.spec.retry_interval_seconds(),
                )
            expression = _run(ctx).ready_exprs.get(index)
            if expression is not None:
                # readyExpr replaces the built-in check (Flux without AdditiveCELDependencyCheck).
                try:
                    verdict = expression.evaluate({"dep": raw, "self": ks.to_k8s()})
                except CelError as exc:
                    return Result.progressing(
                        f"dependency '{name}' is not ready: readyExpr failed: {exc}",
                        reason=meta.DEPENDENCY_NOT_READY,
                        after=ks.spec.retry_interval_seconds(),
                    )
                if verdict is not True:
                    return Result.progressing(
                        f"dependency '{name}' is not ready according to readyExpr",
                        reason=meta.DEPENDENCY_NOT_READY,
                        after=ks.spec.retry_interval_seconds(),
                    )
                continue
            other = Kustomization.model_validate(raw)
            ready = meta.get_condition(other.get_conditions(), meta.READY)
            if ready is None or ready.status != meta.CONDITION_TRUE:
                return waiting
            if other.status.observed_generation != other.generation:
                return waiting
            if source_key(other) == source_key(ks) and other.status.last_applied_revision != build.revision:
                return Result.progressing(
                    f"dependency '{name}' revision is not up to date",
                    reason=meta.DEPENDENCY_NOT_READY,
                    after=ks.spec.retry_interval_seconds(),
                )
        return None

    # --- 4. apply, prune, health, status ---------------------------------------------------------

    async def _publish_done(
        self, ctx: Context[Kustomization], revision: str, result: Result, changes: list[Change]
    ) -> None:
        ks = ctx.obj
        payload = ApplyDone(
            object=ObjectRef(
                api_version=Kustomization.api_version(),
                kind=KIND,
                namespace=ks.namespace,
                name=ks.name,
                uid=ks.metadata.uid,
            ),
            revision=revision,
            ready=result.state == "ready",
            reason=result.reason,
            message=result.message,
            changes=changes,
        )
        try:
            await self.bus.publish(payload)
        except Exception as exc:
            ctx.log.warning("could not publish apply.done: %s", exc)

    async def apply(self, ctx: Context[Kustomization]) -> Result:
        started = time.monotonic()
        build = _run(ctx).build
        assert build is not None
        result, changes = await self._apply(ctx, build, started)
        ks = ctx.obj
        ctx.event_metadata[f"{Kustomization.GROUP}/{meta.META_COMMIT_STATUS}"] = (
            meta.META_COMMIT_STATUS_UPDATE
        )
        record_history(ks, build.digest, build.revision, result.reason, time.monotonic() - started)
        if result.state == "ready":
            await self._persist_ready(ctx, result)
        await self._publish_done(ctx, build.revision, result, changes)
        return result

    async def _persist_ready(self, ctx: Context[Kustomization], result: Result) -> None:
        """Write the status `summarize` will write, before announcing `apply.done`: a dependent
        triggered by the event must find this Kustomization Ready at the revision. (The controller
        summarizes and patches again after the step; the result is the same.)"""
        ks = ctx.obj
        summarize(ctx, result)
        try:
            await self.kube.patch_status(
                Kustomization.api_version(),
                KIND,
                ks.name,
                ks.namespace,
                status_json(ks),
                field_manager=f"{names.STATUS_FIELD_MANAGER_PREFIX}{self.service}",
            )
        except KubeError as exc:
            ctx.log.warning("could not write the status before apply.done: %s", exc)

    def _with_notes(self, ctx: Context[Kustomization], message: str) -> str:
        notes = _run(ctx).notes
        if not notes:
            return message
        return f"{message}; not supported, ignored: " + "; ".join(notes)

    async def _apply(
        self, ctx: Context[Kustomization], build: BuildReady, started: float
    ) -> tuple[Result, list[Change]]:
        ks = ctx.obj
        spec = ks.spec
        retry = spec.retry_interval_seconds()
        timeout = spec.timeout_seconds()
        deadline = started + timeout
        ks.status.last_attempted_revision = build.revision
        try:
            data = await fetch_artifact(build.url, build.digest, max_bytes=self.max_bundle_bytes)
            objects = read_bundle(data, max_bytes=self.max_bundle_bytes)
        except (ArtifactError, BundleError) as exc:
            return (
                Result.failed(
                    meta.ARTIFACT_FAILED,
                    f"cannot read the build bundle: {sanitize_message(str(exc))}",
                    after=retry,
                ),
                [],
            )
        common = spec.common_metadata
        for obj in objects:
            set_owner(
                obj,
                ks.name,
                ks.namespace,
                common.labels if common else None,
                common.annotations if common else None,
            )

        # Apply in stages.
        outcome = await self.applier.apply_staged(objects, force=spec.force, deadline=deadline)
        previous = inventory_of(ks)
        applied_items = [(e.ident, e.version) for e in outcome.entries]
        if outcome.errors:
            # Keep tracking everything we own: the old inventory plus what this run wrote.
            ks.status.inventory = make_inventory(previous + applied_items)
            message = "\n".join(outcome.errors)
            changes = [e.change() for e in outcome.entries]
            if lines := change_lines(outcome.entries):
                ctx.event(meta.PROGRESSING, lines)
            return Result.failed(meta.RECONCILIATION_FAILED, message, after=retry), changes
        entries = list(outcome.entries)
        new_ids = {e.ident.id for e in outcome.entries}

        # Garbage-collect what left the bundle.
        stale = [(ident, v) for ident, v in previous if ident.id not in new_ids]
        kept: list[tuple[ObjMeta, str]] = []
        prune_errors: list[str] = []
        if spec.prune and stale:
            deleted, kept, prune_errors = await self.applier.prune(stale, owner=(ks.name, ks.namespace))
            entries.extend(deleted)
        ks.status.inventory = make_inventory(applied_items + kept)
        changes = [e.change() for e in entries]
        # No `ctx.unchanged`: the summary event already goes out only when Ready changes (or on
        # failure), and a recovery without changes (back to the last applied revision) must be told.
        if lines := change_lines(entries):
            ctx.event(meta.PROGRESSING, lines)
        if prune_errors:
            return Result.failed(meta.PRUNE_FAILED, "\n".join(prune_errors), after=retry), changes

        # Health checks.
        refs, problems = self._health_refs(ks, outcome.applied)
        if problems:
            message = "\n".join(problems)
            ctx.set_condition(meta.HEALTHY, meta.CONDITION_FALSE, meta.HEALTH_CHECK_FAILED, message)
            return Result.failed(meta.HEALTH_CHECK_FAILED, message, after=retry), changes
        if refs:
            healthy, message = await self.applier.wait_healthy(
                refs, timeout=max(0.0, deadline - time.monotonic()), custom=_run(ctx).custom_checks
            )
            if not healthy:
                ctx.set_condition(meta.HEALTHY, meta.CONDITION_FALSE, meta.HEALTH_CHECK_FAILED, message)
                return Result.failed(meta.HEALTH_CHECK_FAILED, message, after=retry), changes
            ctx.set_condition(meta.HEALTHY, meta.CONDITION_TRUE, meta.SUCCEEDED, message)
        else:
            ctx.remove_condition(meta.HEALTHY)

        ks.status.last_applied_revision = build.revision
        message = self._with_notes(ctx, f"Applied revision: {build.revision}")
        return Result.ready(message, reason=meta.RECONCILIATION_SUCCEEDED), changes

    def _health_refs(
        self, ks: Kustomization, applied: list[Obj]
    ) -> tuple[list[tuple[str, ObjMeta]], list[str]]:
        """What to health-check: every applied object with `wait`, else `healthChecks`."""
        if ks.spec.wait:
            return [(o["apiVersion"], identity(o)) for o in applied], []
        refs: list[tuple[str, ObjMeta]] = []
        problems: list[str] = []
        for check in ks.spec.health_checks or []:
            api_version = check.api_version
            match = [
                o
                for o in applied
                if o["kind"] == check.kind
                and o["metadata"]["name"] == check.name
                and (o["metadata"].get("namespace") or "") in ("", check.namespace or ks.namespace)
            ]
            if api_version is None:
                if not match:
                    problems.append(
                        f"health check {check.kind}/{check.namespace or ks.namespace}/{check.name} "
                        "has no apiVersion and is not among the applied objects"
                    )
                    continue
                api_version = match[0]["apiVersion"]
            namespace = check.namespace or (
                match[0]["metadata"].get("namespace", "") if match else ks.namespace
            )
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            refs.append((api_version, ObjMeta(namespace or "", check.name, group, check.kind)))
        return refs, problems

    # --- deletion --------------------------------------------------------------------------------

    async def garbage_collect(self, ctx: Context[Kustomization]) -> Result | None:
        """On deletion: Flux's deletionPolicy (MirrorPrune follows spec.prune; Delete; Orphan;
        WaitForTermination). A suspended Kustomization leaves its objects alone."""
        ks = ctx.obj
        policy = ks.spec.deletion_policy or "MirrorPrune"
        if ks.spec.suspend or policy == "Orphan" or (policy == "MirrorPrune" and not ks.spec.prune):
            return None
        items = inventory_of(ks)
        if not items:
            return None
        wait = ks.spec.timeout_seconds() if policy == "WaitForTermination" else None
        deleted, _kept, errors = await self.applier.prune(items, owner=(ks.name, ks.namespace), wait=wait)
        if errors:
            return Result.failed(meta.PRUNE_FAILED, "\n".join(errors), after=5.0)
        if deleted:
            ctx.log.info("garbage collected %d objects", len(deleted))
        return None
