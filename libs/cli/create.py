"""`sluice create source git|kustomization|image repository|policy|update NAME [--export]`.

Builds the object from flags exactly like `flux create`; `--export` prints the YAML (for GitOps
authoring), otherwise the object is created or updated with server-side apply.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from libs.cli.kinds import with_kube
from libs.common.api import ValidationFailed, validate_object
from libs.common.api.duration import format_duration, parse_duration
from libs.common.api.image.imagepolicy import ImagePolicy
from libs.common.api.image.imagerepository import ImageRepository
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.api.meta import FluxObject
from libs.common.api.source.gitrepository import GitRepository
from libs.common.kube import Kube, KubeError

FIELD_MANAGER = "sluice"


class UsageError(ValueError):
    """The flags do not describe a valid object."""


def _duration(value: str) -> str:
    """Go's canonical form, as flux writes it (`1m` → `1m0s`)."""
    try:
        return format_duration(parse_duration(value))
    except ValueError as exc:
        raise UsageError(f"invalid duration {value!r}: {exc}") from None


def _sorted(value: Any) -> Any:
    """Keys in alphabetical order at every level, like flux's YAML (sigs.k8s.io/yaml)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _object(
    kind: type[FluxObject], name: str, namespace: str, labels: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(sorted(labels.items()))
    return {
        "apiVersion": kind.api_version(),
        "kind": kind.KIND,
        "metadata": metadata,
        "spec": _sorted(spec),
    }


def _git_ref(branch: str | None, tag: str | None, semver: str | None, commit: str | None) -> dict[str, str]:
    ref = {"branch": branch, "tag": tag, "semver": semver, "commit": commit}
    return {k: v for k, v in ref.items() if v}


def _source_ref(value: str, default_kind: str, namespace: str | None) -> dict[str, str]:
    """`name`, `Kind/name` or `Kind/name.namespace` → a sourceRef."""
    kind, _, rest = value.rpartition("/")
    name, _, ns = rest.partition(".")
    if not name:
        raise UsageError(f"invalid source reference {value!r}")
    ref = {"kind": kind or default_kind, "name": name}
    if ns or namespace:
        ref["namespace"] = ns or str(namespace)
    return ref


def spec_for(args: argparse.Namespace) -> tuple[type[FluxObject], dict[str, Any]]:
    """The kind and spec the `create` flags describe."""
    what = args.create_kind
    if what == "source git":
        if not args.url:
            raise UsageError("--url is required")
        spec: dict[str, Any] = {"url": args.url, "interval": _duration(args.interval)}
        ref = _git_ref(args.branch, args.tag, args.tag_semver, args.commit)
        spec["ref"] = ref or {"branch": "master"}
        if args.secret_ref:
            spec["secretRef"] = {"name": args.secret_ref}
        if args.ignore_paths:
            spec["ignore"] = "\n".join(args.ignore_paths)
        return GitRepository, spec
    if what == "kustomization":
        if not args.source:
            raise UsageError("--source is required")
        spec = {
            "interval": _duration(args.interval),
            "path": args.path,
            "prune": args.prune,
            "sourceRef": _source_ref(args.source, "GitRepository", args.source_namespace),
        }
        if args.target_namespace:
            spec["targetNamespace"] = args.target_namespace
        if args.wait:
            spec["wait"] = True
        if args.health_check_timeout:
            spec["timeout"] = _duration(args.health_check_timeout)
        if args.depends_on:
            spec["dependsOn"] = [_depends(d) for d in args.depends_on]
        return Kustomization, spec
    if what == "image repository":
        if not args.image:
            raise UsageError("--image is required")
        spec = {"image": args.image, "interval": _duration(args.interval)}
        if args.secret_ref:
            spec["secretRef"] = {"name": args.secret_ref}
        if args.provider:
            spec["provider"] = args.provider
        if args.insecure:
            spec["insecure"] = True
        return ImageRepository, spec
    if what == "image policy":
        if not args.image_ref:
            raise UsageError("--image-ref is required")
        chosen = [s for s in (args.select_semver, args.select_alpha, args.select_numeric) if s]
        if len(chosen) != 1:
            raise UsageError("exactly one of --select-semver, --select-alpha, --select-numeric is required")
        policy: dict[str, Any]
        if args.select_semver:
            policy = {"semver": {"range": args.select_semver}}
        elif args.select_alpha:
            if args.select_alpha not in ("asc", "desc"):
                raise UsageError("--select-alpha must be asc or desc")
            policy = {"alphabetical": {"order": args.select_alpha}}
        else:
            if args.select_numeric not in ("asc", "desc"):
                raise UsageError("--select-numeric must be asc or desc")
            policy = {"numerical": {"order": args.select_numeric}}
        spec = {"imageRepositoryRef": {"name": args.image_ref}, "policy": policy}
        if args.filter_extract and not args.filter_regex:
            raise UsageError("--filter-extract needs --filter-regex")
        if args.filter_regex:
            tags = {"pattern": args.filter_regex}
            if args.filter_extract:
                tags["extract"] = args.filter_extract
            spec["filterTags"] = tags
        if args.reflect_digest:
            spec["digestReflectionPolicy"] = args.reflect_digest
        return ImagePolicy, spec
    if what == "image update":
        if not args.git_repo_ref:
            raise UsageError("--git-repo-ref is required")
        if not args.author_email:
            raise UsageError("--author-email is required")
        author = {"email": args.author_email}
        if args.author_name:
            author["name"] = args.author_name
        git: dict[str, Any] = {"commit": {"author": author}}
        if args.checkout_branch:
            git["checkout"] = {"ref": {"branch": args.checkout_branch}}
        if args.commit_template:
            git["commit"]["messageTemplate"] = args.commit_template
        if args.push_branch:
            git["push"] = {"branch": args.push_branch}
        source_ref = {"kind": "GitRepository", "name": args.git_repo_ref}
        if args.git_repo_namespace:
            source_ref["namespace"] = args.git_repo_namespace
        spec = {
            "git": git,
            "interval": _duration(args.interval),
            "sourceRef": source_ref,
            "update": {"strategy": "Setters"},
        }
        if args.git_repo_path:
            spec["update"]["path"] = args.git_repo_path
        return ImageUpdateAutomation, spec
    raise UsageError(f"unknown kind {what!r}")


def _depends(value: str) -> dict[str, str]:
    """`NAMESPACE/NAME` or `NAME` → a dependsOn entry."""
    if "/" in value:
        ns, name = value.split("/", 1)
        return {"name": name, "namespace": ns}
    return {"name": value}


def to_yaml(obj: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def create(args: argparse.Namespace) -> int:
    try:
        kind, spec = spec_for(args)
        obj = _object(kind, args.name, args.namespace, dict(args.label or []), spec)
        validate_object(obj)
    except (UsageError, ValidationFailed) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    if args.export:
        sys.stdout.write(to_yaml(obj))
        return 0

    async def apply(kube: Kube) -> bool:
        existed = await kube.get(obj["apiVersion"], obj["kind"], args.name, args.namespace) is not None
        await kube.apply(obj, field_manager=FIELD_MANAGER)
        return existed

    print(f"► applying {kind.KIND} {args.name} in {args.namespace} namespace")
    try:
        existed = with_kube(args.kubeconfig, args.context, apply)
    except KubeError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    print(f"✔ {kind.KIND} {'updated' if existed else 'created'}")
    return 0


def _labels(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid label {value!r}, expected key=value")
    return key, val


def add_parsers(sub: Any) -> None:
    """Register `create …` on the top-level subparsers."""
    p_create = sub.add_parser("create", help="create or update Flux objects, or print them with --export")
    csub = p_create.add_subparsers(dest="create_group", required=True, metavar="KIND")

    def common(p: argparse.ArgumentParser, kind: str) -> None:
        p.set_defaults(create_kind=kind)
        p.add_argument("name", help="the object's name")
        p.add_argument("--export", action="store_true", help="print the YAML instead of applying it")
        p.add_argument(
            "--label", action="append", type=_labels, metavar="KEY=VALUE", help="set a label (repeatable)"
        )

    p_source = csub.add_parser("source", help="create a source")
    ssub = p_source.add_subparsers(dest="source_kind", required=True, metavar="KIND")
    p = ssub.add_parser("git", help="a GitRepository")
    common(p, "source git")
    p.add_argument("--url", help="the Git repository URL")
    p.add_argument("--branch", help="the branch to follow")
    p.add_argument("--tag", help="the tag to check out")
    p.add_argument("--tag-semver", help="the semver range of tags to follow")
    p.add_argument("--commit", help="the commit SHA to check out")
    p.add_argument("--secret-ref", help="the Secret with the Git credentials")
    p.add_argument("--ignore-paths", action="append", help="gitignore-style paths to leave out (repeatable)")
    p.add_argument("--interval", default="1m", help="how often to check the remote (1m)")

    p = csub.add_parser("kustomization", aliases=["ks"], help="a Kustomization")
    common(p, "kustomization")
    p.add_argument("--source", help="the source: NAME, Kind/NAME or Kind/NAME.NAMESPACE")
    p.add_argument("--source-namespace", help=argparse.SUPPRESS)
    p.add_argument("--path", default="./", help="the path in the source (./)")
    p.add_argument("--prune", action="store_true", help="delete objects removed from the source")
    p.add_argument("--target-namespace", help="override the namespace of every object")
    p.add_argument("--wait", action="store_true", help="wait for the applied objects to become ready")
    p.add_argument("--health-check-timeout", help="how long to wait for health (spec.timeout)")
    p.add_argument("--depends-on", action="append", help="NAMESPACE/NAME or NAME (repeatable)")
    p.add_argument("--interval", default="1m", help="how often to reconcile (1m)")

    p_image = csub.add_parser("image", help="create an image automation object")
    isub = p_image.add_subparsers(dest="image_kind", required=True, metavar="KIND")
    p = isub.add_parser("repository", help="an ImageRepository")
    common(p, "image repository")
    p.add_argument("--image", help="the image repository to scan, e.g. ghcr.io/org/app")
    p.add_argument("--secret-ref", help="a dockerconfigjson Secret with registry credentials")
    p.add_argument("--provider", choices=["generic", "aws", "azure", "gcp"], help="auto-login provider")
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP")
    p.add_argument("--interval", default="1m", help="how often to scan (1m)")

    p = isub.add_parser("policy", help="an ImagePolicy")
    common(p, "image policy")
    p.add_argument("--image-ref", help="the ImageRepository to take tags from")
    p.add_argument("--select-semver", help="a semver range; selects the highest tag within it")
    p.add_argument("--select-alpha", help="asc or desc: alphabetical order")
    p.add_argument("--select-numeric", help="asc or desc: numerical order")
    p.add_argument("--filter-regex", help="only tags matching this regular expression")
    p.add_argument("--filter-extract", help="the value compared, e.g. $ts (needs --filter-regex)")
    p.add_argument(
        "--reflect-digest", choices=["Never", "IfNotPresent", "Always"], help="fill status.latestRef.digest"
    )

    p = isub.add_parser("update", help="an ImageUpdateAutomation")
    common(p, "image update")
    p.add_argument("--git-repo-ref", help="the GitRepository to update")
    p.add_argument("--git-repo-namespace", help="its namespace, when not the automation's")
    p.add_argument("--git-repo-path", help="the directory scanned for setter markers (default: the root)")
    p.add_argument("--checkout-branch", help="the branch to check out (default: the GitRepository's)")
    p.add_argument("--push-branch", help="the branch to push to (default: the checkout branch)")
    p.add_argument("--author-name", help="the commit author's name")
    p.add_argument("--author-email", help="the commit author's email")
    p.add_argument("--commit-template", help="the commit message template")
    p.add_argument("--interval", default="1m", help="how often to run (1m)")
