"""`sluice install` and `sluice uninstall`: deploy/k8s rendered for the chosen components, applied and awaited.

Install builds each directory of the deploy/k8s layout (namespace, crds, nats, storage/pvc and
services/<component>) with libs/kustomize and concatenates them, so any subset of components
renders without a root kustomization reaching outside its directory. Applying is server-side
apply with the `sluice` field manager: CRDs first (waited for Established, so custom resources
in the same install are accepted), then Namespaces, then everything else. Running it again
changes nothing. Secrets marked `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent` are only
created, never overwritten, which keeps the NATS passwords the first install generated.

Uninstall follows `flux uninstall`: the components go first (so no controller acts on what
follows: a Kustomization deleted while the apply service runs would prune the user's
workloads), then every custom resource has its finalizers removed and is deleted (nothing is
left to remove them), then the CRDs and the namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from libs.cli.kinds import with_kube
from libs.cli.version import VERSION
from libs.common.api.duration import format_duration, parse_duration
from libs.common.api.registry import ALL_KINDS
from libs.common.kube import Kube, KubeError, NotFound
from libs.common.names import FIELD_MANAGER
from libs.kstatus import compute
from libs.kustomize import KustomizeError, build

#: Top-level command name → its implementation (see libs/cli/main.py).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

DEFAULT_COMPONENTS: tuple[str, ...] = ("source", "build", "apply", "notify")
EXTRA_COMPONENTS: tuple[str, ...] = ("image-scan", "image-update")
ALL_COMPONENTS: tuple[str, ...] = DEFAULT_COMPONENTS + EXTRA_COMPONENTS
NAMESPACE = "flux-system"
PART_OF_LABEL = ("app.kubernetes.io/part-of", "sluice")

#: Flux's controller names, accepted so a `flux install` command line works unchanged.
FLUX_ALIASES: dict[str, tuple[str, ...]] = {
    "source-controller": ("source",),
    "kustomize-controller": ("build", "apply"),
    "notification-controller": ("notify",),
    "image-reflector-controller": ("image-scan",),
    "image-automation-controller": ("image-update",),
}
#: Flux components Sluice has no counterpart for yet.
UNSUPPORTED_COMPONENTS = ("helm-controller", "source-watcher")

#: Directories every install contains, in the order they are rendered and applied.
BASE_DIRECTORIES = ("namespace", "crds", "nats", "storage/pvc")

SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
IF_NOT_PRESENT = "IfNotPresent"
NATS_USERS_SECRET = "sluice-nats-users"

#: Workload kinds `install` waits for.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CRD_KIND = "CustomResourceDefinition"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
#: How long CRDs may take to become Established before install gives up.
CRD_TIMEOUT = 60.0
POLL_INTERVAL = 0.2
#: Parallel API calls while applying or deleting.
CONCURRENCY = 8

#: Kinds `uninstall` looks for (by the part-of label) besides those in the manifests, so objects of
#: an older or customised install are found too. Cluster-scoped ones are listed cluster-wide.
COMPONENT_KINDS: tuple[tuple[str, str, bool], ...] = (
    ("apps/v1", "Deployment", True),
    ("apps/v1", "StatefulSet", True),
    ("apps/v1", "DaemonSet", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler", True),
    ("policy/v1", "PodDisruptionBudget", True),
    ("networking.k8s.io/v1", "NetworkPolicy", True),
    ("v1", "Service", True),
    ("v1", "ServiceAccount", True),
    ("rbac.authorization.k8s.io/v1", "Role", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", True),
    ("v1", "ConfigMap", True),
    ("v1", "Secret", True),
    ("v1", "PersistentVolumeClaim", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False),
)

Say = Callable[[str], None]


class InstallError(RuntimeError):
    """A message that says what went wrong and what to do."""


class InstallFailed(InstallError):
    """The install was applied but did not become ready (failed, or not in time)."""


# --- choosing and rendering -----------------------------------------------------------------------


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _resolve(name: str) -> tuple[str, ...]:
    if name in ALL_COMPONENTS:
        return (name,)
    if name in FLUX_ALIASES:
        return FLUX_ALIASES[name]
    if name in UNSUPPORTED_COMPONENTS:
        raise InstallError(f"component {name!r} is not supported yet; leave it out of --components")
    valid = ", ".join((*ALL_COMPONENTS, *FLUX_ALIASES))
    raise InstallError(f"unknown component {name!r}; valid components: {valid}")


def select_components(components: str | None, extra: str | None) -> list[str]:
    """`--components` (default DEFAULT_COMPONENTS) + `--components-extra`, comma-separated; Flux
    controller names accepted as aliases; unknown names → InstallError naming the valid ones.

    The result is in canonical order (defaults, then extras) without repeats, so the same set
    always renders the same bytes whatever order it was typed in."""
    chosen = list(DEFAULT_COMPONENTS) if components is None else _names(components)
    chosen += _names(extra or "")
    if not chosen:
        raise InstallError(f"no components chosen; --components takes e.g. {','.join(DEFAULT_COMPONENTS)}")
    wanted = {c for name in chosen for c in _resolve(name)}
    return [c for c in ALL_COMPONENTS if c in wanted]


def manifests_dir(override: str | Path | None = None) -> Path:
    """deploy/k8s of this checkout (found relative to the libs package), or `--manifests DIR`;
    InstallError if absent."""
    if override is not None:
        path = Path(override)
        if not (path / "crds").is_dir():
            raise InstallError(f"{path} is not a Sluice deploy/k8s directory (no crds/ in it)")
        return path
    path = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
    if not (path / "crds").is_dir():
        raise InstallError(
            f"the Sluice manifests are not next to this installation ({path} is missing); "
            "pass --manifests DIR pointing at a checkout's deploy/k8s"
        )
    return path


def _directories(components: Sequence[str]) -> list[str]:
    for name in components:
        if name not in ALL_COMPONENTS:
            raise InstallError(f"unknown component {name!r}; valid components: {', '.join(ALL_COMPONENTS)}")
    chosen = [c for c in ALL_COMPONENTS if c in components]
    return [*BASE_DIRECTORIES, *(f"services/{c}" for c in chosen)]


def render(components: Sequence[str], manifests: Path | None = None) -> str:
    """The multi-document YAML of the install for these components (namespace, crds, nats,
    storage/pvc, services/<c> for each) — exactly what `sluice install --export` prints, and what
    bootstrap writes to <path>/flux-system/gotk-components.yaml. Deterministic (same input → same
    bytes)."""
    root = manifests if manifests is not None else manifests_dir()
    chosen = [c for c in ALL_COMPONENTS if c in components]
    header = f"---\n# Sluice version: {VERSION}\n# Components: {','.join(chosen)}\n"
    parts: list[str] = []
    for directory in _directories(components):
        path = root / directory
        if not (path / "kustomization.yaml").is_file():
            raise InstallError(
                f"{path} is missing: the manifests are incomplete; "
                "pass --manifests DIR pointing at a complete deploy/k8s"
            )
        try:
            parts.append(build(path).to_yaml())
        except KustomizeError as exc:
            raise InstallError(f"building {path} failed: {exc}") from None
    return header + "---\n".join(parts)


def objects_of(yaml_text: str) -> list[dict[str, Any]]:
    """Parse the multi-document YAML."""
    objects: list[dict[str, Any]] = []
    for number, doc in enumerate(yaml.safe_load_all(yaml_text), start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            # its content is not quoted: it could be a Secret missing its kind
            raise InstallError(
                f"document {number} of the manifests is not a Kubernetes object (apiVersion, kind)"
            )
        objects.append(doc)
    return objects


# --- applying -------------------------------------------------------------------------------------


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj['kind']}/{namespace}/{meta['name']}" if namespace else f"{obj['kind']}/{meta['name']}"


def _annotation(obj: dict[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def _error_text(obj: dict[str, Any], exc: KubeError) -> str:
    """The API's message, except for Secrets, whose validation errors may quote values."""
    if obj.get("kind") == "Secret":
        return exc.reason or f"HTTP {exc.code}"
    return str(exc)


def _password() -> str:
    """A random password nats-server reads back as itself: nats.conf takes it unquoted
    ($NATS_PASSWORD_<USER>), and a value starting with a digit or '-' parses as a number, size or
    date (or fails the server's start), so it starts with a letter."""
    return secrets.choice(string.ascii_letters) + secrets.token_urlsafe(24)


def _with_passwords(secret: dict[str, Any]) -> dict[str, Any]:
    """The NATS users Secret with a fresh random password for every key (never the placeholders)."""
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    fresh = {k: v for k, v in secret.items() if k not in ("data", "stringData")}
    fresh["stringData"] = {key: _password() for key in keys}
    return fresh


def _apply_hint(obj: dict[str, Any], exc: KubeError) -> str:
    """What to do about the errors an upgrade typically meets."""
    text = str(exc)
    meta = obj["metadata"]
    if "immutable" in text or "Forbidden: updates to" in text:
        where = f"-n {meta['namespace']} " if meta.get("namespace") else ""
        return (
            f"; a field that cannot change did: delete it (`kubectl {where}delete "
            f"{obj['kind'].lower()} {meta['name']}`) and run `sluice install` again"
        )
    if "being terminated" in text:
        return f"; namespace {NAMESPACE} is still being deleted: wait until it is gone, then install again"
    return ""


async def _get(kube: Kube, obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    return await kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


async def _apply_one(kube: Kube, obj: dict[str, Any]) -> str:
    """Apply one object; the flux-style line saying what happened to it."""
    ref = _ref(obj)
    try:
        before = await _get(kube, obj)
        if _annotation(obj, SSA_ANNOTATION) == IF_NOT_PRESENT:
            if before is not None:
                return f"{ref} skipped (exists; {SSA_ANNOTATION}: {IF_NOT_PRESENT})"
            is_nats = obj["kind"] == "Secret" and obj["metadata"]["name"] == NATS_USERS_SECRET
            await kube.create(_with_passwords(obj) if is_nats else obj, field_manager=FIELD_MANAGER)
            return f"{ref} created"
        after = await kube.apply(obj, field_manager=FIELD_MANAGER)
    except KubeError as exc:
        raise InstallError(f"applying {ref} failed: {_error_text(obj, exc)}{_apply_hint(obj, exc)}") from None
    if before is None:
        return f"{ref} created"
    unchanged = before["metadata"].get("resourceVersion") == after["metadata"].get("resourceVersion")
    return f"{ref} {'unchanged' if unchanged else 'configured'}"


async def _apply_all(kube: Kube, objects: list[dict[str, Any]], say: Say) -> None:
    """Apply concurrently (bounded), report in manifest order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(obj: dict[str, Any]) -> str:
        async with gate:
            return await _apply_one(kube, obj)

    for line in await asyncio.gather(*(one(obj) for obj in objects)):
        say(line)


async def _wait_established(kube: Kube, crds: list[dict[str, Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(crds)
    while pending:
        states = [compute(await _get(kube, crd)) for crd in pending]
        failed = [(crd, s) for crd, s in zip(pending, states, strict=True) if s.failed]
        if failed:
            crd, state = failed[0]
            raise InstallFailed(f"{_ref(crd)}: {state.message}")
        pending = [crd for crd, s in zip(pending, states, strict=True) if not s.current]
        if pending and time.monotonic() > deadline:
            names = ", ".join(_ref(c) for c in pending)
            raise InstallFailed(f"CRDs not established after {format_duration(timeout)}: {names}")
        if pending:
            await asyncio.sleep(POLL_INTERVAL)


async def apply_objects(kube: Kube, objects: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    """Server-side apply (field manager `sluice`), CRDs first and waited for Established, then
    Namespaces, then the rest; prints flux-style progress; Secrets annotated
    `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent` are created only when absent (never
    overwritten); the NATS users Secret gets random passwords when created by the installer
    (never the placeholders)."""
    crds = [o for o in objects if o["kind"] == CRD_KIND]
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    rest = [o for o in objects if o["kind"] not in (CRD_KIND, "Namespace")]
    if crds:
        await _apply_all(kube, crds, say)
        await _wait_established(kube, crds, CRD_TIMEOUT)
    await _apply_all(kube, namespaces, say)
    await _apply_all(kube, rest, say)


async def wait_ready(
    kube: Kube, objects: list[dict[str, Any]], timeout: float, say: Callable[[str], None]
) -> None:
    """Wait (libs/kstatus) until every workload in `objects` is Current; InstallFailed (an
    InstallError) with which ones are not and why after `timeout`, or as soon as one fails."""
    deadline = time.monotonic() + timeout
    pending = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    while pending:
        states = [compute(await _get(kube, obj)) for obj in pending]
        still: list[tuple[dict[str, Any], str]] = []
        for obj, state in zip(pending, states, strict=True):
            if state.current:
                say(f"✔ {obj['metadata']['name']}: {obj['kind'].lower()} ready")
            elif state.failed:
                raise InstallFailed(f"{_ref(obj)} failed: {state.message}. {_hint(obj)}")
            else:
                still.append((obj, state.message))
        pending = [obj for obj, _ in still]
        if pending and time.monotonic() > deadline:
            waiting = "; ".join(f"{_ref(obj)} ({message})" for obj, message in still)
            raise InstallFailed(
                f"timed out after {format_duration(timeout)} waiting for {waiting}. "
                f"{_hint(still[0][0])}, or wait longer with --timeout"
            )
        if pending:
            await asyncio.sleep(POLL_INTERVAL)


def _hint(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return (
        f"See why with `kubectl -n {meta.get('namespace', NAMESPACE)} describe "
        f"{obj['kind'].lower()} {meta['name']}` and its pods' events; `sluice install` is safe to run again"
    )


# --- the install command --------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> None:
    print(f"✗ {message}", file=sys.stderr, flush=True)


def _duration(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise InstallError(f"--timeout: {exc}") from None
    if seconds <= 0:
        raise InstallError(f"--timeout must be positive, not {value!r}")
    return seconds


def _check_namespace(namespace: str | None) -> None:
    if namespace not in (None, NAMESPACE):
        raise InstallError(
            f"Sluice installs into the {NAMESPACE} namespace; -n/--namespace {namespace} is not supported yet"
        )


async def _reachable(kube: Kube) -> None:
    if not await kube.ping():
        raise InstallError(
            f"cannot reach the Kubernetes API at {kube.host}; check --kubeconfig/--context (or $KUBECONFIG)"
        )


def install(args: argparse.Namespace) -> int:
    """`sluice install`: print the manifests (--export), or apply them and wait for readiness."""
    try:
        _check_namespace(getattr(args, "namespace", None))
        components = select_components(args.components, args.components_extra)
        timeout = _duration(args.timeout)
        root = manifests_dir(args.manifests)
        if args.export:
            print(render(components, root), end="", flush=True)
            return 0
        _say("✚ generating manifests")
        objects = objects_of(render(components, root))
        _say("✔ manifests build completed")

        async def work(kube: Kube) -> None:
            await _reachable(kube)
            _say(f"► installing components in {NAMESPACE} namespace")
            await apply_objects(kube, objects, _say)
            _say("✔ installed components")
            _say("◎ verifying installation")
            await wait_ready(kube, objects, timeout, _say)

        with_kube(args.kubeconfig, args.context, work)
    except (InstallError, KubeError) as exc:
        _fail(str(exc))
        return 1
    _say("✔ install finished")
    return 0


# --- uninstall ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One object to delete."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Target:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def _component_kinds() -> list[tuple[str, str, bool]]:
    """COMPONENT_KINDS plus any other kind this checkout's manifests install."""
    kinds = list(COMPONENT_KINDS)
    known = {(a, k) for a, k, _ in kinds}
    try:
        objects = objects_of(render(ALL_COMPONENTS))
    except InstallError:
        return kinds
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key not in known and obj["kind"] not in ("Namespace", CRD_KIND):
            known.add(key)
            kinds.append((*key, "namespace" in obj["metadata"]))
    return kinds


async def _list(
    kube: Kube, api_version: str, kind: str, namespace: str | None, selector: str | None
) -> list[Any]:
    try:
        items, _ = await kube.list_objects(api_version, kind, namespace, label_selector=selector)
    except NotFound:
        return []  # the cluster does not serve this kind: nothing of it to delete
    return items


async def _components(kube: Kube) -> list[Target]:
    selector = "=".join(PART_OF_LABEL)
    kinds = await asyncio.to_thread(_component_kinds)
    lists = await asyncio.gather(
        *(
            _list(kube, api, kind, NAMESPACE if namespaced else None, selector)
            for api, kind, namespaced in kinds
        )
    )
    return [
        Target(api, kind, i["metadata"]["name"], i["metadata"].get("namespace"))
        for (api, kind, _), items in zip(kinds, lists, strict=True)
        for i in items
    ]


async def _crds(kube: Kube) -> list[dict[str, Any]]:
    """Sluice's CRDs in the cluster: labelled part-of sluice, or named like the generated ones."""
    names = {f"{cls.PLURAL}.{cls.GROUP}" for cls in ALL_KINDS}
    items = await _list(kube, CRD_API_VERSION, CRD_KIND, None, None)
    key, value = PART_OF_LABEL
    return [
        crd
        for crd in items
        if crd["metadata"]["name"] in names or (crd["metadata"].get("labels") or {}).get(key) == value
    ]


def _storage_kind(crd: dict[str, Any]) -> tuple[str, str] | None:
    """The apiVersion (storage version) and kind of a CRD's custom resources."""
    spec = crd.get("spec") or {}
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), None)
    return (f"{spec['group']}/{storage}", spec["names"]["kind"]) if storage else None


async def _custom_resources(kube: Kube, crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = [k for k in map(_storage_kind, crds) if k is not None]
    lists = await asyncio.gather(*(_list(kube, api, kind, None, None) for api, kind in kinds))
    return [obj for items in lists for obj in items]


@dataclass
class Uninstall:
    """One uninstall run: what it deletes, whether for real, and what it printed as failed."""

    kube: Kube
    dry_run: bool
    say: Say
    deleted: list[Target]
    failures: int = 0

    @property
    def suffix(self) -> str:
        return " (dry run)" if self.dry_run else ""

    def failed(self, message: str) -> None:
        self.failures += 1
        _fail(message)

    async def delete(self, targets: list[Target]) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(target: Target) -> str | None:
            async with gate:
                try:
                    await self.kube.delete(
                        target.api_version, target.kind, target.name, target.namespace, dry_run=self.dry_run
                    )
                except KubeError as exc:
                    return f"{target.ref} deletion failed: {exc}"
                return None

        for target, error in zip(targets, await asyncio.gather(*(one(t) for t in targets)), strict=True):
            if error is not None:
                self.failed(error)
            else:
                self.deleted.append(target)
                self.say(f"✔ {target.ref} deleted{self.suffix}")

    async def clear_finalizers(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            if not obj["metadata"].get("finalizers"):
                continue
            target = Target.of(obj)
            if not self.dry_run:
                try:
                    await self.kube.patch(
                        target.api_version,
                        target.kind,
                        target.name,
                        {"metadata": {"finalizers": None}},
                        namespace=target.namespace,
                        field_manager=FIELD_MANAGER,
                    )
                except NotFound:
                    continue
                except KubeError as exc:
                    self.failed(f"{target.ref} removing finalizers failed: {exc}")
                    continue
            self.say(f"✔ {target.ref} finalizers deleted{self.suffix}")

    async def wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.deleted)
        while pending:
            still = []
            for t in pending:
                try:
                    if await self.kube.get(t.api_version, t.kind, t.name, t.namespace) is not None:
                        still.append(t)
                except NotFound:
                    pass  # its CRD is gone, and it with it
            pending = still
            if pending and time.monotonic() > deadline:
                names = ", ".join(t.ref for t in pending[:10])
                raise InstallFailed(
                    f"timed out after {format_duration(timeout)} waiting for the deletion of {names}; "
                    "something still holds them (finalizers of another controller?); "
                    "`sluice uninstall` is safe to run again"
                )
            if pending:
                await asyncio.sleep(POLL_INTERVAL)


async def uninstall_from(
    kube: Kube,
    *,
    keep_crds: bool = False,
    keep_namespace: bool = False,
    dry_run: bool = False,
    timeout: float = 300.0,
    say: Say = _say,
) -> int:
    """Delete Sluice from the cluster; the number of objects that could not be deleted."""
    await _reachable(kube)
    run = Uninstall(kube, dry_run, say, [])
    say(f"► deleting components in {NAMESPACE} namespace")
    await run.delete(await _components(kube))
    if not keep_crds:
        crds = await _crds(kube)
        say("► deleting toolkit.fluxcd.io finalizers in all namespaces")
        resources = await _custom_resources(kube, crds)
        await run.clear_finalizers(resources)
        say("► deleting toolkit.fluxcd.io custom resources in all namespaces")
        await run.delete([Target.of(r) for r in resources])
        say("► deleting toolkit.fluxcd.io custom resource definitions")
        await run.delete([Target.of(c) for c in crds])
    if keep_namespace or keep_crds:
        reason = "--keep-namespace" if keep_namespace else "--keep-crds: its custom resources stay"
        say(f"◎ keeping namespace {NAMESPACE} ({reason})")
    elif await kube.get("v1", "Namespace", NAMESPACE) is not None:
        say(f"► deleting namespace {NAMESPACE}")
        await run.delete([Target("v1", "Namespace", NAMESPACE)])
    if not dry_run:
        say("◎ waiting for the deletions to finish")
        await run.wait_gone(timeout)
    return run.failures


def _confirm(keep_crds: bool) -> bool:
    if not sys.stdin.isatty():
        raise InstallError(
            "uninstall asks for confirmation, but stdin is not a terminal; "
            "pass --silent to uninstall without asking (or --dry-run to only list what would go)"
        )
    what = (
        "Sluice (custom resources and their definitions are kept)"
        if keep_crds
        else ("Sluice, its custom resource definitions and every custom resource")
    )
    try:
        answer = input(f"Are you sure you want to delete {what}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def uninstall(args: argparse.Namespace) -> int:
    """`sluice uninstall`: confirm (unless --silent or --dry-run), then delete."""
    try:
        _check_namespace(getattr(args, "namespace", None))
        timeout = _duration(args.timeout)
        if not (args.silent or args.dry_run) and not _confirm(args.keep_crds):
            _fail("aborting: nothing was deleted")
            return 1
        failures = with_kube(
            args.kubeconfig,
            args.context,
            lambda kube: uninstall_from(
                kube,
                keep_crds=args.keep_crds,
                keep_namespace=args.keep_namespace,
                dry_run=args.dry_run,
                timeout=timeout,
            ),
        )
    except (InstallError, KubeError) as exc:
        _fail(str(exc))
        return 1
    if failures:
        _fail(
            f"uninstall incomplete: {failures} object(s) could not be deleted; see above, then run it again"
        )
        return 1
    _say(f"✔ uninstall finished{' (dry run)' if args.dry_run else ''}")
    return 0


# --- command line ---------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """Register this module's commands on the top-level subparsers."""
    p_in = sub.add_parser(
        "install",
        help="install Sluice into the cluster (or print its manifests), like `flux install`",
        description="Apply deploy/k8s for the chosen components into the flux-system namespace and "
        "wait until they are ready. Safe to run again: unchanged objects stay untouched.",
    )
    p_in.add_argument(
        "--components",
        help=f"comma-separated components (default {','.join(DEFAULT_COMPONENTS)}); "
        "Flux controller names are accepted too",
    )
    p_in.add_argument(
        "--components-extra",
        help=f"components in addition to --components: {','.join(EXTRA_COMPONENTS)}",
    )
    p_in.add_argument("--export", action="store_true", help="print the install manifests and exit")
    p_in.add_argument("--manifests", metavar="DIR", help="the deploy/k8s directory to install from")
    p_in.add_argument("--timeout", default="5m", help="how long to wait for readiness (5m)")

    p_un = sub.add_parser(
        "uninstall",
        help="remove Sluice, its custom resources and CRDs from the cluster, like `flux uninstall`",
        description="Delete Sluice's components, then its custom resources (finalizers removed), "
        "CRDs and the flux-system namespace. Workloads Sluice deployed are left alone.",
    )
    p_un.add_argument(
        "--keep-crds",
        action="store_true",
        help="keep the CRDs and every custom resource (and so the namespace), to reinstall later",
    )
    p_un.add_argument("--keep-namespace", action="store_true", help="skip namespace deletion")
    p_un.add_argument("-s", "--silent", action="store_true", help="delete without asking for confirmation")
    p_un.add_argument("--dry-run", action="store_true", help="only print the objects that would be deleted")
    p_un.add_argument("--timeout", default="5m", help="how long to wait for the deletions to finish (5m)")


COMMANDS["install"] = install
COMMANDS["uninstall"] = uninstall
