"""`sluice build|diff kustomization NAME --path DIR`: what a Kustomization would apply, and what
would change in the cluster if it did — like `flux build` and `flux diff`.

`build` renders a local directory exactly as the build service renders the source artifact
(libs.fluxbuild: generated kustomization.yaml, spec-level namePrefix/targetNamespace/images/
patches/components/commonMetadata, postBuild substitution with `substituteFrom` read from the
cluster), adds the owner labels the apply service adds, and prints the YAML. `diff` server-side
dry-run applies every rendered object with the apply service's field manager and compares the
result with the live object, so server defaults never look like drift; objects in the
Kustomization's inventory that the build no longer has are reported as deleted when prune is on.
With `--recursive`, the Kustomizations a build contains are built too, from the local directories
of their sources (`--local-sources`), and each is diffed against its own inventory.

Secret values are never printed: Secret `data`/`stringData` values show as `***` (a changed key
as `*** (before)` / `*** (after)`), and values read from `substituteFrom` Secrets are masked
wherever they were substituted.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from libs.common import names
from libs.common.api import meta
from libs.common.api.duration import format_duration, parse_duration
from libs.common.api.inventory import InventoryId
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.source.gitrepository import GitRepository
from libs.common.kube import Kube, KubeError
from libs.common.runtime.redact import sanitize_message
from libs.fluxbuild import (
    BuildSpec,
    FluxBuildError,
    configmap_variables,
    object_id,
    render,
    secret_variables,
)
from libs.git.ignore import IgnoreMatcher, source_matcher
from libs.kustomize.yamlio import dump_stream

T = TypeVar("T")

#: Top-level command name → its implementation (see libs/cli/main.py).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

MASK = "***"
MASK_BEFORE = "*** (before)"
MASK_AFTER = "*** (after)"
_SHORTEST_MASKED_SUBSTRING = 4
"""A substituted Secret value shorter than this is masked only where it is a whole value, so a
one-character secret does not turn every `1` in the output into `***`."""
_SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")
_SECRET_FIELDS = ("data", "stringData")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DIFF_CONCURRENCY = 8
"""Objects dry-run at once (the apply service's default concurrency)."""
_DIFF_ERROR = 2
"""`flux diff` exit status when the diff itself failed (1 means differences were found)."""


class InspectError(Exception):
    """A message for the user (printed after `✗`), saying what went wrong and what to do."""


@dataclass(frozen=True)
class Request:
    """What the user asked for, from the command line."""

    name: str
    namespace: str
    path: Path
    kustomization_file: Path | None = None
    dry_run: bool = False
    strict: bool | None = None
    """None: on, as in the build service, except with --dry-run (cluster variables are skipped)."""
    ignore_paths: tuple[str, ...] = ()
    timeout: float = 300.0
    kubeconfig: str | None = None
    context: str | None = None
    recursive: bool = False
    local_sources: Mapping[str, Path] = field(default_factory=dict)
    """`Kind/namespace/name` of a source → the local directory holding its files (--recursive)."""


@dataclass
class Built:
    """The rendered objects, labelled as the apply service labels them, and what to mask."""

    kustomization: dict[str, Any]
    objects: list[dict[str, Any]]
    sensitive: set[str] = field(default_factory=set)


# --- command line ----------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """Register `build kustomization` and `diff kustomization` on the top-level subparsers."""
    p_build = sub.add_parser("build", help="render a Kustomization from a local directory, like `flux build`")
    build_sub = p_build.add_subparsers(dest="build_kind", required=True, metavar="KIND")
    p_bk = build_sub.add_parser(
        "kustomization",
        aliases=["ks"],
        help="print the YAML the build service would render for NAME from --path",
    )
    _common_flags(p_bk)
    p_bk.add_argument(
        "--dry-run",
        action="store_true",
        help="do not connect to the cluster (needs --kustomization-file; substituteFrom is skipped)",
    )

    p_diff = sub.add_parser("diff", help="compare a local build with the cluster, like `flux diff`")
    diff_sub = p_diff.add_subparsers(dest="diff_kind", required=True, metavar="KIND")
    p_dk = diff_sub.add_parser(
        "kustomization",
        aliases=["ks"],
        help="server-side dry-run the build of --path and print what would change (exit 1 on changes)",
    )
    _common_flags(p_dk)
    p_dk.add_argument(
        "--progress-bar",
        default=True,
        action=argparse.BooleanOptionalAction,
        help="print progress to stderr (yes)",
    )


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the Kustomization's name")
    parser.add_argument(
        "--path",
        required=True,
        help="local directory that matches the Kustomization's spec.path",
    )
    parser.add_argument(
        "--kustomization-file",
        help="a YAML file holding the Kustomization (used instead of the cluster's spec)",
    )
    parser.add_argument(
        "--ignore-paths",
        default="",
        help="comma-separated .gitignore-style patterns of files to leave out",
    )
    parser.add_argument(
        "--strict-substitute",
        default=None,
        action=argparse.BooleanOptionalAction,
        help="fail when a ${var} without default is not set (on, as in the build service; off with --dry-run)",
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="also build the Kustomizations the build contains (their sources from --local-sources)",
    )
    parser.add_argument(
        "--local-sources",
        default="",
        metavar="KIND/NAMESPACE/NAME=DIR,…",
        help="local directories of the sources of nested Kustomizations (--recursive); NAME's own"
        " source defaults to the checkout holding --path",
    )
    parser.add_argument("--timeout", default="5m", help="give up after this long (5m)")


def _request(args: argparse.Namespace) -> Request:
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise InspectError(f"invalid --timeout {args.timeout!r}: {exc}") from None
    return Request(
        name=args.name,
        namespace=args.namespace,
        path=Path(args.path),
        kustomization_file=Path(args.kustomization_file) if args.kustomization_file else None,
        dry_run=bool(getattr(args, "dry_run", False)),
        strict=args.strict_substitute,
        ignore_paths=tuple(p.strip() for p in args.ignore_paths.split(",") if p.strip()),
        timeout=timeout,
        kubeconfig=args.kubeconfig,
        context=args.context,
        recursive=args.recursive,
        local_sources=parse_local_sources(args.local_sources),
    )


def parse_local_sources(text: str) -> dict[str, Path]:
    """`GitRepository/flux-system/repo=./checkout,…` (flux's format) → {source key: directory}."""
    found: dict[str, Path] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, sep, directory = item.partition("=")
        if not sep or key.count("/") != 2 or not directory:
            raise InspectError(
                f"invalid --local-sources entry {item!r}: expected Kind/namespace/name=DIR,"
                " e.g. GitRepository/flux-system/apps=./"
            )
        found[key] = Path(directory)
    return found


def build_command(args: argparse.Namespace) -> int:
    """`sluice build kustomization`: the YAML on stdout; exit 1 with `✗ …` on stderr on failure."""
    try:
        request = _request(args)
        builds: list[Built] = _run(request, build)
    except InspectError as exc:
        _fail(str(exc))
        return 1
    sensitive = _all_sensitive(builds)
    objects = [mask_object(obj, sensitive) for built in builds for obj in built.objects]
    sys.stdout.write(dump_stream(objects) if objects else "")
    return 0


def diff_command(args: argparse.Namespace) -> int:
    """`sluice diff kustomization`: 0 in sync, 1 differences, 2 the diff failed (like flux)."""
    progress = _progress if args.progress_bar else _quiet
    try:
        request = _request(args)
        report: Report = _run(request, lambda kube, req: _diff(kube, req, progress))
    except InspectError as exc:
        _fail(str(exc))
        return _DIFF_ERROR
    sys.stdout.write(report.text)
    sys.stdout.flush()
    for error in report.errors:
        _fail(error)
    if report.errors:
        return _DIFF_ERROR
    if report.changed:
        _fail("identified at least one change, exiting with non-zero exit code")
        return 1
    return 0


COMMANDS["build"] = build_command
COMMANDS["diff"] = diff_command


def _fail(message: str) -> None:
    print(f"✗ {message}", file=sys.stderr, flush=True)


def _progress(message: str) -> None:
    print(f"◎ {message}", file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    return None


# --- running against the cluster (or not) ----------------------------------------------------


def _run(request: Request, work: Callable[[Kube | None, Request], Awaitable[T]]) -> T:
    """Check the inputs, then run `work` with a Kubernetes client (None in dry-run) under the
    request's timeout."""
    _check_inputs(request)

    async def main() -> T:
        async with asyncio.timeout(request.timeout):
            if request.dry_run:
                return await work(None, request)
            kube = _connect(request)
            try:
                if not await kube.ping():
                    raise InspectError(
                        f"cannot reach the Kubernetes API at {kube.host}: check --kubeconfig and --context"
                        " (or build offline with --dry-run --kustomization-file)"
                    )
                return await work(kube, request)
            finally:
                await kube.close()

    try:
        return asyncio.run(main())
    except TimeoutError:
        raise InspectError(
            f"timed out after {format_duration(request.timeout)}: raise --timeout or check the cluster"
        ) from None
    except KubeError as exc:
        raise InspectError(sanitize_message(str(exc))) from None


def _connect(request: Request) -> Kube:
    try:
        return Kube.from_config(request.kubeconfig, context=request.context)
    except KubeError as exc:
        raise InspectError(
            f"{exc}: pass --kubeconfig, or build offline with --dry-run --kustomization-file"
        ) from None


def _check_inputs(request: Request) -> None:
    if not request.path.is_dir():
        what = "is not a directory" if request.path.exists() else "does not exist"
        raise InspectError(
            f"invalid resource path {str(request.path)!r}: it {what}; --path must be the local"
            " directory that matches the Kustomization's spec.path"
        )
    file = request.kustomization_file
    if file is not None and not file.is_file():
        raise InspectError(f"invalid kustomization file {str(file)!r}: no such file")
    for key, directory in request.local_sources.items():
        if not directory.is_dir():
            raise InspectError(f"invalid --local-sources entry {key}={directory}: not a directory")
    if request.dry_run and file is None:
        raise InspectError(
            "--dry-run does not read the cluster, so it needs the Kustomization from --kustomization-file"
        )


async def build(kube: Kube | None, request: Request) -> list[Built]:
    """Kustomization NAME rendered from `request.path` — and, with --recursive, every
    Kustomization its build contains, depth first, each from its source's local directory."""
    ks = await _kustomization(kube, request)
    root, rel = artifact_root(request.path)
    top = await build_one(kube, request, ks, root, rel)
    results = [top]
    if request.recursive:
        roots = {source_key(ks): root, **request.local_sources}
        await _descend(kube, request, top, roots, results, {_ks_key(ks)})
    return results


async def _descend(
    kube: Kube | None,
    request: Request,
    parent: Built,
    roots: Mapping[str, Path],
    results: list[Built],
    visited: set[str],
) -> None:
    for obj in parent.objects:
        if obj.get("kind") != Kustomization.KIND or not str(obj.get("apiVersion", "")).startswith(
            Kustomization.GROUP + "/"
        ):
            continue
        child = await _nested(kube, obj, _ks_key(parent.kustomization))
        if _ks_key(child) in visited:
            continue  # the Kustomization that builds itself (flux-system) or a cycle
        visited.add(_ks_key(child))
        key = source_key(child)
        if key not in roots:
            raise InspectError(
                f"cannot get local path for {key} of {Kustomization.KIND} {_ks_key(child)}:"
                f" pass --local-sources {key}=DIR"
            )
        path = str((child.get("spec") or {}).get("path") or "")
        built = await build_one(kube, request, child, roots[key].resolve(), path)
        results.append(built)
        await _descend(kube, request, built, roots, results, visited)


async def _nested(kube: Kube | None, obj: Mapping[str, Any], parent: str) -> dict[str, Any]:
    """A Kustomization found in a build: its spec as built (what the cluster will get), its
    status (the inventory) from the cluster when it is there."""
    child = copy.deepcopy(dict(obj))
    md = child.setdefault("metadata", {})
    md.setdefault("namespace", parent.split("/", 1)[0])
    if kube is not None:
        live = await kube.get(Kustomization.api_version(), Kustomization.KIND, md["name"], md["namespace"])
        if live is not None and live.get("status"):
            child["status"] = copy.deepcopy(live["status"])
    return child


def _ks_key(ks: Mapping[str, Any]) -> str:
    md = ks.get("metadata") or {}
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


def source_key(ks: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` of the Kustomization's source (flux's --local-sources key)."""
    ref = (ks.get("spec") or {}).get("sourceRef") or {}
    namespace = ref.get("namespace") or (ks.get("metadata") or {}).get("namespace") or ""
    return f"{ref.get('kind') or ''}/{namespace}/{ref.get('name') or ''}"


async def build_one(kube: Kube | None, request: Request, ks: dict[str, Any], root: Path, path: str) -> Built:
    """Render Kustomization `ks` at `path` inside `root`, with its substitution variables read
    from the cluster (unless offline), and label the objects as the apply service does."""
    md = ks.get("metadata") or {}
    name, namespace = str(md.get("name") or ""), str(md.get("namespace") or "")
    spec_raw: dict[str, Any] = ks.get("spec") or {}
    strict = request.strict if request.strict is not None else not request.dry_run
    try:
        spec = dataclasses.replace(BuildSpec.from_spec(spec_raw, strict=strict), path=path)
    except FluxBuildError as exc:
        raise InspectError(f"{Kustomization.KIND} {namespace}/{name}: {exc}") from None
    sources: list[dict[str, str]] = []
    sensitive: set[str] = set()
    source_ignore = None
    if kube is not None:
        sources, sensitive = await _variables(kube, spec_raw, namespace)
        source_ignore = await _source_ignore(kube, spec_raw, namespace)
    ignore = [source_ignore or "", *request.ignore_paths]
    objects = await asyncio.to_thread(_render, root, spec, sources, sensitive, ignore)
    for obj in objects:
        set_owner_labels(obj, name, namespace)
    return Built(ks, objects, sensitive)


# --- the Kustomization -----------------------------------------------------------------------


async def _kustomization(kube: Kube | None, request: Request) -> dict[str, Any]:
    """The local file's Kustomization when given (with the live status, for the inventory), else
    the cluster's."""
    where = f"{Kustomization.KIND} {request.namespace}/{request.name}"
    live = None
    if kube is not None:
        live = await kube.get(
            Kustomization.api_version(), Kustomization.KIND, request.name, request.namespace
        )
    if request.kustomization_file is None:
        if live is None:
            raise InspectError(
                f"{where} not found: check the name and --namespace, or pass its manifest with"
                " --kustomization-file"
            )
        return live
    local = load_kustomization_file(request.kustomization_file, request.name, request.namespace)
    if live is not None and (live.get("status") or {}).get("inventory"):
        local["status"] = copy.deepcopy(live["status"])
    return local


def load_kustomization_file(path: Path, name: str, namespace: str) -> dict[str, Any]:
    """The Kustomization named `name` in `namespace` among the documents of `path`."""
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise InspectError(f"cannot read kustomization file {str(path)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InspectError(f"kustomization file {str(path)!r} is not valid YAML{where}") from None
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != Kustomization.KIND:
            continue
        md = doc.get("metadata") or {}
        if md.get("name") == name and (md.get("namespace") or namespace) == namespace:
            md["namespace"] = namespace
            return doc
    raise InspectError(
        f"no Kustomization named '{name}' in namespace '{namespace}' in {str(path)!r}:"
        " check NAME and --namespace"
    )


async def _variables(
    kube: Kube, spec_raw: Mapping[str, Any], namespace: str
) -> tuple[list[dict[str, str]], set[str]]:
    """The data of `postBuild.substituteFrom`, in order, as the build service reads it."""
    sources: list[dict[str, str]] = []
    sensitive: set[str] = set()
    for item in (spec_raw.get("postBuild") or {}).get("substituteFrom") or []:
        kind, name = str(item.get("kind") or ""), str(item.get("name") or "")
        obj = await kube.get("v1", kind, name, namespace) if kind in ("ConfigMap", "Secret") else None
        if obj is None:
            if item.get("optional") and kind in ("ConfigMap", "Secret"):
                continue
            raise InspectError(
                f"substitute from '{kind}/{name}' error: {kind.lower()}s \"{name}\" not found"
                f" in namespace '{namespace}'"
            )
        try:
            values = secret_variables(obj) if kind == "Secret" else configmap_variables(obj)
        except FluxBuildError as exc:
            raise InspectError(str(exc)) from None
        if kind == "Secret":
            sensitive.update(v for v in values.values() if v)
        sources.append(values)
    return sources, sensitive


async def _source_ignore(kube: Kube, spec_raw: Mapping[str, Any], namespace: str) -> str | None:
    """`spec.ignore` of the GitRepository the Kustomization uses, when it is in the cluster: the
    source service leaves those files out of the artifact the build service renders."""
    ref = spec_raw.get("sourceRef") or {}
    if ref.get("kind") != GitRepository.KIND or not ref.get("name"):
        return None
    source = await kube.get(
        GitRepository.api_version(), GitRepository.KIND, str(ref["name"]), ref.get("namespace") or namespace
    )
    ignore = ((source or {}).get("spec") or {}).get("ignore")
    return str(ignore) if ignore else None


# --- rendering -------------------------------------------------------------------------------


def _render(
    root: Path,
    spec: BuildSpec,
    sources: list[dict[str, str]],
    sensitive: set[str],
    ignore: list[str],
) -> list[dict[str, Any]]:
    """Copy the tree the source service would have packed from `root` (its default exclusions,
    the `.sourceignore` files, then `ignore`: the GitRepository's `spec.ignore` and --ignore-paths)
    and render `spec.path` inside it with libs.fluxbuild, as the build service renders the artifact."""
    ignored = source_matcher(root, "\n".join(ignore))
    with tempfile.TemporaryDirectory(prefix="sluice-build-") as tmp:
        work = Path(tmp) / "source"
        copy_tree(root, work, ignored)
        try:
            rendered = render(work, spec, sources=sources, sensitive=sensitive, in_place=True)
        except FluxBuildError as exc:
            raise InspectError(sanitize_message(str(exc))) from None
    return rendered.resources


def artifact_root(path: Path) -> tuple[Path, str]:
    """The directory that plays the source artifact for `path`, and `path` inside it.

    The enclosing Git checkout when there is one, as a GitRepository artifact is the checkout (a
    kustomization may then refer to `../base`); else `path` itself, so nothing outside it is read.
    """
    target = path.resolve()
    for candidate in (target, *target.parents):
        if (candidate / ".git").exists():
            return candidate, target.relative_to(candidate).as_posix()
    return target, "."


def copy_tree(root: Path, dest: Path, ignored: IgnoreMatcher) -> None:
    """Copy `root` to `dest` without what `ignored` excludes (symlinks are copied as links;
    libs.fluxbuild refuses those leaving the tree)."""

    def skip(directory: str, entries: list[str]) -> set[str]:
        rel = os.path.relpath(directory, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        return {
            entry
            for entry in entries
            if ignored.match(prefix + entry, os.path.isdir(os.path.join(directory, entry)))
        }

    shutil.copytree(root, dest, symlinks=True, ignore=skip)


def set_owner_labels(obj: dict[str, Any], name: str, namespace: str) -> None:
    """The labels the apply service (and kustomize-controller) put on every object it applies."""
    md = obj.setdefault("metadata", {})
    md["labels"] = {
        **(md.get("labels") or {}),
        meta.KUSTOMIZE_NAME_LABEL: name,
        meta.KUSTOMIZE_NAMESPACE_LABEL: namespace,
    }


# --- masking ---------------------------------------------------------------------------------


def mask_object(obj: Mapping[str, Any], sensitive: Collection[str]) -> dict[str, Any]:
    """A copy safe to print: Secret values as `***`, substituted Secret values masked anywhere."""
    out: dict[str, Any] = mask_values(copy.deepcopy(dict(obj)), sensitive)
    if out.get("kind") == "Secret":
        _mask_last_applied(out)
        for name in _SECRET_FIELDS:
            data = out.get(name)
            if isinstance(data, dict):
                out[name] = dict.fromkeys(data, MASK)
    return out


def _mask_last_applied(secret: dict[str, Any]) -> None:
    """`kubectl apply` keeps a copy of the whole Secret, data included, in an annotation."""
    annotations = (secret.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and _LAST_APPLIED in annotations:
        annotations[_LAST_APPLIED] = MASK


def mask_values(node: Any, sensitive: Collection[str]) -> Any:
    """`node` with every value from a `substituteFrom` Secret replaced by `***`."""
    if not sensitive:
        return node
    if isinstance(node, dict):
        return {k: mask_values(v, sensitive) for k, v in node.items()}
    if isinstance(node, list):
        return [mask_values(v, sensitive) for v in node]
    if node is None or isinstance(node, bool):
        return node
    text = str(node)
    if text in sensitive:
        return MASK
    if isinstance(node, str):
        for value in sorted(sensitive, key=len, reverse=True):
            if len(value) >= _SHORTEST_MASKED_SUBSTRING:
                text = text.replace(value, MASK)
        return text
    return node


def mask_secret_pair(live: dict[str, Any], merged: dict[str, Any]) -> None:
    """Mask two versions of a Secret in place so a changed key shows, but never a value."""
    _mask_last_applied(live)
    _mask_last_applied(merged)
    for name in _SECRET_FIELDS:
        before = live.get(name)
        after = merged.get(name)
        before = before if isinstance(before, dict) else {}
        after = after if isinstance(after, dict) else {}
        if name in live:
            live[name] = {k: _secret_mask(k, before, after, MASK_BEFORE) for k in before}
        if name in merged:
            merged[name] = {k: _secret_mask(k, after, before, MASK_AFTER) for k in after}


def _secret_mask(key: str, mine: Mapping[str, Any], other: Mapping[str, Any], changed: str) -> str:
    return changed if key in other and other[key] != mine[key] else MASK


# --- diff ------------------------------------------------------------------------------------


@dataclass
class Report:
    """What `diff` prints on stdout, whether anything differs, and per-object failures."""

    lines: list[str] = field(default_factory=list)
    changed: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


async def _diff(kube: Kube | None, request: Request, progress: Callable[[str], None]) -> Report:
    assert kube is not None
    progress(f"building Kustomization {request.namespace}/{request.name} from {request.path}")
    builds = await build(kube, request)
    sensitive = _all_sensitive(builds)
    progress("running dry-run")
    report = Report()
    for built in builds:
        await _diff_built(kube, built, sensitive, report)
    progress("processing inventory")
    return report


def _all_sensitive(builds: Iterable[Built]) -> set[str]:
    """Every value read from a `substituteFrom` Secret: masked in every object printed."""
    return {value for built in builds for value in built.sensitive}


async def _diff_built(kube: Kube, built: Built, sensitive: Collection[str], report: Report) -> None:
    """Add one Kustomization's created/drifted objects, then its deleted ones, to `report`."""
    limit = asyncio.Semaphore(DIFF_CONCURRENCY)

    async def one(obj: dict[str, Any]) -> tuple[str, list[str]] | str:
        async with limit:
            try:
                return await diff_object(kube, obj, sensitive)
            except (KubeError, InspectError) as exc:
                return str(mask_values(_describe(obj, exc), sensitive))

    # Concurrent requests, printed in build order: the output does not depend on timing.
    outcomes = await asyncio.gather(*(one(obj) for obj in built.objects))
    failed = False
    seen: set[str] = set()
    for obj, outcome in zip(built.objects, outcomes, strict=True):
        if isinstance(outcome, str):
            report.errors.append(outcome)
            failed = True
            continue
        action, lines = outcome
        seen.add(inventory_id(obj))
        if action in ("created", "drifted"):
            report.changed = True
            report.lines.append(f"► {display(obj)} {action}")
            report.lines.extend(lines)
    spec = built.kustomization.get("spec") or {}
    if spec.get("prune") and not failed:
        for entry in stale_entries(built.kustomization, seen):
            report.changed = True
            report.lines.append(f"► {entry} deleted")


def _describe(obj: Mapping[str, Any], exc: Exception) -> str:
    """`Kind/ns/name dry-run failed: …`; a Secret's server message is left out (it may echo data)."""
    if isinstance(exc, InspectError):
        return str(exc)
    reason = getattr(exc, "reason", "") or ""
    if obj.get("kind") == "Secret":
        return f"{display(obj)} dry-run failed ({reason or type(exc).__name__})"
    detail = f" ({reason})" if reason else ""
    return f"{display(obj)} dry-run failed{detail}: {sanitize_message(str(exc))}"


async def diff_object(kube: Kube, obj: dict[str, Any], sensitive: Collection[str]) -> tuple[str, list[str]]:
    """("created" | "drifted" | "unchanged" | "skipped", the field changes to print)."""
    md = obj.get("metadata") or {}
    if _disabled(obj):
        return "skipped", []
    res = await kube.resource(obj["apiVersion"], obj["kind"])
    if not res.namespaced:
        md.pop("namespace", None)
    elif not md.get("namespace"):
        raise InspectError(
            f"{obj['kind']}/{md.get('name')} namespace not specified: set metadata.namespace"
            " in the manifests or spec.targetNamespace"
        )
    live = await kube.get(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
    if live is None:
        return "created", []
    if _annotation(obj, meta.KUSTOMIZE_SSA_ANNOTATION) == "ifnotpresent":
        return "skipped", []  # the apply service creates it once and never updates it
    merged = await kube.apply(obj, field_manager=names.FIELD_MANAGER, force=True, dry_run=True)
    before, after = normalize(live), normalize(merged)
    if before == after:
        return "unchanged", []
    if obj.get("kind") == "Secret":
        mask_secret_pair(before, after)
    before, after = mask_values(before, sensitive), mask_values(after, sensitive)
    lines = format_changes(field_changes(before, after))
    return "drifted", lines or ["  (only masked values differ)"]


def _disabled(obj: Mapping[str, Any]) -> bool:
    """`kustomize.toolkit.fluxcd.io/reconcile: disabled` or `ssa: ignore`: the apply service skips it."""
    return (
        _annotation(obj, meta.KUSTOMIZE_RECONCILE_ANNOTATION) == "disabled"
        or _annotation(obj, meta.KUSTOMIZE_SSA_ANNOTATION) == "ignore"
    )


def _annotation(obj: Mapping[str, Any], key: str) -> str:
    """An annotation (or label: Flux reads both) in lower case, or ''."""
    md = obj.get("metadata") or {}
    value = (md.get("annotations") or {}).get(key) or (md.get("labels") or {}).get(key) or ""
    return str(value).lower()


def normalize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Without what the server owns (status, managedFields, resourceVersion, uid …)."""
    doc = copy.deepcopy(dict(obj))
    doc.pop("status", None)
    md = doc.get("metadata")
    if isinstance(md, dict):
        for key in _SERVER_FIELDS:
            md.pop(key, None)
    return doc


def display(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` (`Kind/name` when cluster-scoped), as Flux prints objects."""
    return object_id(obj)


def inventory_id(obj: Mapping[str, Any]) -> str:
    """Flux's inventory id: `<namespace>_<name>_<group>_<kind>`, as the apply service writes it."""
    md = obj.get("metadata") or {}
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return str(InventoryId(md.get("namespace") or "", md.get("name") or "", group, obj.get("kind") or ""))


def stale_entries(ks: Mapping[str, Any], built_ids: Collection[str]) -> list[str]:
    """`Kind/ns/name` of the inventory entries the build no longer has, sorted."""
    inventory = (ks.get("status") or {}).get("inventory") or {}
    stale: list[str] = []
    for entry in inventory.get("entries") or []:
        id_ = str(entry.get("id") or "")
        try:
            namespace, name, _group, kind = InventoryId.parse(id_)
        except ValueError:
            continue
        if id_ in built_ids:
            continue
        stale.append(f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}")
    return sorted(stale)


# --- field changes ---------------------------------------------------------------------------

Change = tuple[str, Any, Any]
"""(path, value before or _MISSING, value after or _MISSING)."""
_MISSING: Any = object()


def field_changes(before: Any, after: Any, path: str = "") -> list[Change]:
    """Every difference between two documents, by field path, in a stable order.

    Lists of objects with unique `name`s (containers, ports, env …) are matched by name, as
    Kubernetes merges them; other lists of equal length element by element; the rest whole.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[Change] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = _join(path, str(key))
            if key not in before:
                changes.append((sub, _MISSING, after[key]))
            elif key not in after:
                changes.append((sub, before[key], _MISSING))
            else:
                changes.extend(field_changes(before[key], after[key], sub))
        return changes
    if isinstance(before, list) and isinstance(after, list):
        named_before, named_after = _by_name(before), _by_name(after)
        if named_before is not None and named_after is not None:
            return field_changes(named_before, named_after, path)
        if len(before) == len(after):
            changes = []
            for index, (b, a) in enumerate(zip(before, after, strict=True)):
                changes.extend(field_changes(b, a, f"{path}[{index}]"))
            return changes
    if before == after:
        return []
    return [(path or ".", before, after)]


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    keyed = {f"[name={i['name']}]": i for i in items}
    return keyed if len(keyed) == len(items) else None


def _join(path: str, key: str) -> str:
    if key.startswith("[name="):
        return path + key
    if "." in key or " " in key or not key:
        return f'{path}["{key}"]'
    return f"{path}.{key}" if path else key


def format_changes(changes: Iterable[Change]) -> list[str]:
    """dyff-like blocks: the field path, then `- old` / `+ new` lines (YAML for structures)."""
    lines: list[str] = []
    for path, before, after in changes:
        lines.append(path)
        if before is not _MISSING:
            lines.extend(f"  - {line}" for line in _show(before))
        if after is not _MISSING:
            lines.extend(f"  + {line}" for line in _show(after))
    return lines


def _show(value: Any) -> list[str]:
    if value in (MASK, MASK_BEFORE, MASK_AFTER):
        return [str(value)]
    if isinstance(value, dict | list) and value:
        text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True)
        return text.rstrip("\n").splitlines()
    text = yaml.safe_dump(value, default_flow_style=True).rstrip("\n")
    return [text.removesuffix("\n...").strip()]
