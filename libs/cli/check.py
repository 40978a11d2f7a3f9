"""`sluice check [--pre]`: is the cluster ready for Sluice, and is Sluice healthy in it.

Shaped like `flux check`: `--pre` checks what an install needs (the API answers, its Kubernetes
version, the permissions to create what the install creates); without it the installation is
checked (the Kubernetes version, the distribution, each component's workload ready per kstatus,
the CRDs and their versions, and the NATS stream with its durable consumers). Every ✗ line says
what is wrong and the summary says what to do; any ✗ makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from libs.cli import install, tree
from libs.cli.events import NoNats, nats_url
from libs.cli.kinds import with_kube
from libs.common import names
from libs.common.api import meta
from libs.common.api.crd import crd_documents
from libs.common.api.duration import format_duration, parse_duration
from libs.common.bus import StreamReport, stream_report
from libs.common.kube import Kube, KubeError
from libs.common.runtime.redact import redact_url
from libs.kstatus import compute

#: Top-level command name → its implementation (see libs/cli/main.py).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

MIN_KUBERNETES = (1, 28, 0)
MIN_KUBERNETES_TEXT = ">=1.28.0-0"
MIN_POLL = 0.05
PART_OF = "app.kubernetes.io/part-of=sluice"
COMPONENT_LABEL = "app.kubernetes.io/component"
VERSION_LABEL = "app.kubernetes.io/version"
NO_NATS = (
    "► NATS: not checked (pass --nats URL; each service's readiness already includes its NATS connection)"
)


@dataclass(frozen=True)
class Access:
    """One permission the install needs: `verb`s on a resource, cluster-wide or in the namespace."""

    group: str
    resource: str
    namespaced: bool

    def text(self, namespace: str) -> str:
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{name} in namespace {namespace}" if self.namespaced else name


#: What `sluice install` creates, server-side applied (create for new objects, patch for the rest).
INSTALL_VERBS = ("create", "patch")
INSTALL_ACCESS: tuple[Access, ...] = (
    Access("apiextensions.k8s.io", "customresourcedefinitions", False),
    Access("", "namespaces", False),
    Access("rbac.authorization.k8s.io", "clusterroles", False),
    Access("rbac.authorization.k8s.io", "clusterrolebindings", False),
    Access("rbac.authorization.k8s.io", "roles", True),
    Access("rbac.authorization.k8s.io", "rolebindings", True),
    Access("apps", "deployments", True),
    Access("apps", "statefulsets", True),
    Access("", "services", True),
    Access("", "configmaps", True),
    Access("", "secrets", True),
    Access("", "serviceaccounts", True),
    Access("", "persistentvolumeclaims", True),
)


@dataclass
class Report:
    """Prints flux-style lines and remembers whether anything failed."""

    say: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def action(self, text: str) -> None:
        self.say(f"► {text}")

    def ok(self, text: str) -> None:
        self.say(f"✔ {text}")

    def waiting(self, text: str) -> None:
        self.say(f"◎ {text}")

    def fail(self, text: str) -> None:
        self.failures.append(text)
        self.say(f"✗ {text}")


@dataclass(frozen=True)
class Options:
    namespace: str
    pre: bool
    required: tuple[str, ...]
    """Components that must be installed (`--components`/`--components-extra`); empty: whatever is."""
    nats: str | None
    timeout: float
    poll_interval: float


# --- prerequisites -------------------------------------------------------------------------------


def parse_kubernetes_version(info: dict[str, Any]) -> tuple[int, int, int] | None:
    """(major, minor, patch) from the API's /version (`v1.30.1-gke.1`, or major/minor `1`/`28+`)."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", str(info.get("gitVersion") or ""))
    if match:
        major, minor, patch = (int(g) for g in match.groups())
        return major, minor, patch
    major_text, minor_text = str(info.get("major") or ""), str(info.get("minor") or "")
    if major_text.isdigit() and minor_text.rstrip("+").isdigit():
        return int(major_text), int(minor_text.rstrip("+")), 0
    return None


async def check_kubernetes(kube: Kube, report: Report) -> bool:
    """The API answers and is recent enough; False when there is no point checking further."""
    report.action("checking prerequisites")
    if not await kube.ping():
        report.fail(
            f"cannot reach the Kubernetes API at {kube.host}: is the cluster up? "
            "check --kubeconfig/--context (or $KUBECONFIG)"
        )
        return False
    ok, line = judge_kubernetes(await kube.server_version())
    (report.ok if ok else report.fail)(line)
    return True


def judge_kubernetes(info: dict[str, Any]) -> tuple[bool, str]:
    """Whether the API's /version meets the minimum, and the line that says so."""
    version = parse_kubernetes_version(info)
    if version is None:
        return False, f"cannot tell the Kubernetes version from {info.get('gitVersion')!r}"
    text = ".".join(str(part) for part in version)
    if version < MIN_KUBERNETES:
        return False, f"Kubernetes version {text} does not match {MIN_KUBERNETES_TEXT}: upgrade the cluster"
    return True, f"Kubernetes {text} {MIN_KUBERNETES_TEXT}"


async def can(kube: Kube, verb: str, access: Access, namespace: str) -> tuple[bool, str]:
    """A SelfSubjectAccessReview: may the current user `verb` this resource? (allowed, reason)."""
    attributes: dict[str, Any] = {"verb": verb, "group": access.group, "resource": access.resource}
    if access.namespaced:
        attributes["namespace"] = namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = (await kube.create(review)).get("status") or {}
    reason = str(answer.get("reason") or answer.get("evaluationError") or "")
    return bool(answer.get("allowed")), reason


async def check_permissions(kube: Kube, namespace: str, report: Report) -> None:
    """Every permission `sluice install` needs, one line per resource."""
    report.action("checking permissions to install")
    for access in INSTALL_ACCESS:
        answers = await asyncio.gather(*(can(kube, verb, access, namespace) for verb in INSTALL_VERBS))
        denied = [
            (verb, reason)
            for verb, (allowed, reason) in zip(INSTALL_VERBS, answers, strict=True)
            if not allowed
        ]
        if not denied:
            report.ok(f"can {', '.join(INSTALL_VERBS)} {access.text(namespace)}")
            continue
        verbs = ", ".join(verb for verb, _ in denied)
        why = "; ".join(reason for _, reason in denied if reason)
        report.fail(
            f"cannot {verbs} {access.text(namespace)}{f' ({why})' if why else ''}: "
            "run the install as a cluster admin or ask for these permissions"
        )


# --- the installation ----------------------------------------------------------------------------


def component_of(obj: dict[str, Any]) -> str:
    """The component a workload belongs to: its component label, else its name without `sluice-`."""
    meta = obj.get("metadata") or {}
    label = (meta.get("labels") or {}).get(COMPONENT_LABEL)
    return str(label or str(meta.get("name", "")).removeprefix("sluice-"))


def images(obj: dict[str, Any]) -> list[str]:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [str(c.get("image")) for c in pod.get("containers") or [] if c.get("image")]


async def workloads(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """Sluice's Deployments and StatefulSets (NATS) in the namespace, by component: those labelled
    part-of=sluice, and the well-known names (`sluice-<component>`) should a tool have dropped
    the labels."""
    found: list[dict[str, Any]] = []
    for kind in ("Deployment", "StatefulSet"):
        items, _ = await kube.list_objects("apps/v1", kind, namespace, label_selector=PART_OF)
        found.extend(items)
    seen = {(o["kind"], o["metadata"]["name"]) for o in found}
    known = [("StatefulSet", "sluice-nats")] + [
        ("Deployment", f"sluice-{c}") for c in (*install.DEFAULT_COMPONENTS, *install.EXTRA_COMPONENTS)
    ]
    unlabelled = await asyncio.gather(
        *(kube.get("apps/v1", kind, name, namespace) for kind, name in known if (kind, name) not in seen)
    )
    found.extend(obj for obj in unlabelled if obj is not None)
    return sorted(found, key=_install_order)


def _install_order(obj: dict[str, Any]) -> tuple[int, str]:
    """NATS first, then the services in the order the installer lists them, then anything else."""
    order = ("nats", *install.DEFAULT_COMPONENTS, *install.EXTRA_COMPONENTS)
    component = component_of(obj)
    return (order.index(component) if component in order else len(order), component)


def check_distribution(found: Sequence[dict[str, Any]], namespace: str, report: Report) -> None:
    """The Sluice version the services carry (NATS carries its own, so it does not count)."""
    report.action("checking version in cluster")
    services = [o for o in found if component_of(o) != "nats"]
    if not services:
        report.fail(f"no Sluice components found in namespace {namespace}: install with `sluice install`")
        return
    versions = sorted({str(_labels(o)[VERSION_LABEL]) for o in services if VERSION_LABEL in _labels(o)})
    for version in versions:
        report.ok(f"distribution: sluice-v{version}")
    unversioned = [o["metadata"]["name"] for o in services if VERSION_LABEL not in _labels(o)]
    if unversioned:
        report.action(f"version unknown for {', '.join(unversioned)} (no {VERSION_LABEL} label)")


async def check_bootstrapped(kube: Kube, namespace: str, report: Report) -> None:
    """Like flux: the namespace is managed by a Kustomization (`sluice bootstrap` makes it so).
    Informational: an install without Git is not an error."""
    ns = await kube.get("v1", "Namespace", namespace)
    managed = meta.KUSTOMIZE_NAME_LABEL in _labels(ns or {})
    report.ok(f"bootstrapped: {'true' if managed else 'false'}")


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


async def wait_current(
    kube: Kube, found: list[dict[str, Any]], options: Options, report: Report
) -> list[dict[str, Any]]:
    """Poll until every Sluice workload is Current, one has failed, or the timeout passes; the
    last look."""
    deadline = time.monotonic() + options.timeout
    announced = False
    while True:
        states = [compute(o) for o in found]
        pending = [o for o, state in zip(found, states, strict=True) if not state.current]
        if not pending or any(state.failed for state in states) or time.monotonic() >= deadline:
            return found
        if not announced:
            listed = ", ".join(o["metadata"]["name"] for o in pending)
            report.waiting(f"waiting for {listed} to be ready (up to {format_duration(options.timeout)})")
            announced = True
        await asyncio.sleep(min(max(options.poll_interval, MIN_POLL), max(0.0, deadline - time.monotonic())))
        found = await workloads(kube, options.namespace)


def check_controllers(found: Sequence[dict[str, Any]], options: Options, report: Report) -> None:
    present = {component_of(o) for o in found}
    for component in options.required:
        if component not in present:
            report.fail(
                f"{component}: deployment sluice-{component} not found in namespace {options.namespace} "
                f"(install it: sluice install --components {','.join(options.required)})"
            )
    for obj in found:
        kind, name = str(obj["kind"]).lower(), obj["metadata"]["name"]
        status = compute(obj)
        if status.current:
            report.ok(f"{name}: {kind} ready")
        else:
            report.fail(
                f"{name}: {kind} not ready: {status.message} "
                f"(see why: kubectl -n {options.namespace} describe {kind} {name})"
            )
        for image in images(obj):
            report.action(image)


async def check_crds(kube: Kube, report: Report) -> None:
    """Each CRD Sluice ships is present, Established and serves the versions it ships."""
    report.action("checking crds")
    for expected in crd_documents():
        name = expected["metadata"]["name"]
        crd = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        if crd is None:
            report.fail(f"{name} not found: install the CRDs with `sluice install`")
            continue
        wanted = {v["name"] for v in expected["spec"]["versions"] if v.get("served")}
        served = {v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")}
        status = compute(crd)
        stored = list((crd.get("status") or {}).get("storedVersions") or [])
        if missing := sorted(wanted - served):
            report.fail(f"{name} does not serve {', '.join(missing)}: upgrade the CRDs with `sluice install`")
        elif not status.current:
            report.fail(f"{name} not established: {status.message}")
        else:
            report.ok(f"{name}/{stored[-1] if stored else sorted(served)[-1]}")


def _owner(consumer: str, components: Sequence[str]) -> str | None:
    """The component whose durable this is: durables are named `<service>-…` (image_scan-… too)."""
    normalized = consumer.replace("_", "-")
    return next((c for c in components if normalized.startswith(f"{c}-")), None)


def report_stream(stream: StreamReport, components: Sequence[str], report: Report) -> None:
    """The stream, each durable consumer with its backlog, and ✗ for an installed service
    without one (it never bound to this stream)."""
    if stream.server_version:
        report.ok(f"NATS server {stream.server_version}")
    if not stream.exists:
        report.fail(
            f"stream {stream.name} not found: no Sluice service has connected to this NATS server yet "
            "(check the services' logs, or pass the NATS URL they use)"
        )
        return
    report.ok(f"stream {stream.name}: {stream.messages} messages, {len(stream.consumers)} consumers")
    for consumer in stream.consumers:
        report.ok(
            f"consumer {consumer.name}: {consumer.num_pending} pending, "
            f"{consumer.num_ack_pending} awaiting ack, {consumer.num_waiting} pull requests waiting"
        )
    owned = {_owner(c.name, components) for c in stream.consumers}
    for component in components:
        if component not in owned:
            report.fail(
                f"{component}: no durable consumer on stream {stream.name} "
                "(is the service connected to this NATS server? check its logs)"
            )


async def check_nats(options: Options, components: Sequence[str], report: Report) -> None:
    try:
        url = nats_url(options.nats)
    except NoNats:
        report.say(NO_NATS)
        return
    report.action(f"checking NATS at {redact_url(url)}")
    try:
        stream = await stream_report(
            url,
            user=os.environ.get("SLUICE_NATS_USER") or None,
            password=os.environ.get("SLUICE_NATS_PASSWORD") or None,
            stream=names.STREAM_NAME,
        )
    except ConnectionError as exc:
        report.fail(
            f"{exc} (pass --nats URL, set SLUICE_NATS_USER/SLUICE_NATS_PASSWORD, or port-forward: "
            f"kubectl -n {options.namespace} port-forward svc/sluice-nats 4222)"
        )
        return
    report_stream(stream, components, report)


async def check(kube: Kube, options: Options, say: Callable[[str], None]) -> bool:
    """Run the checks `options` ask for; True when every one passed."""
    report = Report(say)
    if not await check_kubernetes(kube, report):
        return _summary(report, options)
    if options.pre:
        await check_permissions(kube, options.namespace, report)
        return _summary(report, options)
    found = await workloads(kube, options.namespace)
    check_distribution(found, options.namespace, report)
    if found:
        await check_bootstrapped(kube, options.namespace, report)
    report.action("checking controllers")
    found = await wait_current(kube, found, options, report)
    check_controllers(found, options, report)
    await check_crds(kube, report)
    services = sorted({component_of(o) for o in found} - {"nats"})
    await check_nats(options, services, report)
    return _summary(report, options)


def _summary(report: Report, options: Options) -> bool:
    if not report.failures:
        report.ok("prerequisites checks passed" if options.pre else "all checks passed")
        return True
    what = (
        "fix the ✗ lines above before installing"
        if options.pre
        else "fix the ✗ lines above; `sluice install` repairs missing or outdated parts"
    )
    report.fail(f"check failed: {what}")
    return False


# --- the command ---------------------------------------------------------------------------------


def _required(args: argparse.Namespace) -> tuple[str, ...]:
    """`--components`/`--components-extra` when given (validated by the installer's rules)."""
    if not args.components and not args.components_extra:
        return ()
    return tuple(install.select_components(args.components, args.components_extra))


def _say(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        options = Options(
            namespace=args.namespace,
            pre=args.pre,
            required=_required(args),
            nats=args.nats,
            timeout=parse_duration(args.timeout),
            poll_interval=parse_duration(args.poll_interval),
        )
    except (ValueError, RuntimeError) as exc:
        _say(f"✗ {exc}")
        return 1

    try:
        ok = with_kube(args.kubeconfig, args.context, lambda kube: check(kube, options, _say))
    except KubeError as exc:
        _say(f"✗ {exc} (check --kubeconfig/--context, and that you may read {options.namespace})")
        return 1
    return 0 if ok else 1


def add_parsers(sub: Any) -> None:
    """Register `check` (and `tree`, which lives in libs/cli/tree.py) on the top-level subparsers."""
    p = sub.add_parser("check", help="check requirements (--pre) and the health of the installation")
    p.add_argument("--pre", action="store_true", help="only run pre-installation checks")
    p.add_argument(
        "--components",
        metavar="LIST",
        help="components that must be installed, comma-separated (default: check whatever is installed; "
        "source,build,apply,notify,image-scan,image-update or Flux controller names)",
    )
    p.add_argument(
        "--components-extra",
        metavar="LIST",
        help="components that must be installed in addition to --components",
    )
    p.add_argument(
        "--nats",
        metavar="URL",
        help="NATS URL to check the stream at (default $SLUICE_NATS_URL, else .run/endpoints.json)",
    )
    p.add_argument(
        "--timeout",
        metavar="DURATION",
        default="5m",
        help="how long to wait for the components to be ready (5m)",
    )
    p.add_argument(
        "--poll-interval", metavar="DURATION", default="5s", help="how often to look while waiting (5s)"
    )
    COMMANDS["check"] = run
    tree.add_parsers(sub)
    COMMANDS["tree"] = tree.run
