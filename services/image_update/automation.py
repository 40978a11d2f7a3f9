"""ImageUpdateAutomation: rewrite `$imagepolicy`-marked fields in Git, commit, push, publish git.commit.

A run: check the spec (removed template fields, template syntax, policy selector) → read the
GitRepository (URL, credentials, ref) and the selected ImagePolicies' `latestRef` → skip at once
when neither the policies nor the branch moved since the last run (one ls-remote, no clone) →
otherwise check out from the mirror, apply the setters under `update.path`, commit with the
rendered message and push (a rejected push is retried on the new head at once) → record
`lastPushCommit`/`lastPushTime`/`observedPolicies` and publish `git.commit` so source fetches now.

`image.tag` events are batched per automation for `batch_window` seconds, then one
`reconcile.request` is published: several policy changes arriving together make one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context

from libs.common import names
from libs.common.api import meta
from libs.common.api.image.imagepolicy import ImagePolicy
from libs.common.api.image.imagepolicy import ImageRef as StatusImageRef
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.api.meta import LabelSelector
from libs.common.api.source.gitrepository import GitRepository
from libs.common.bus import Bus, Delivery
from libs.common.events import GitCommit, ImageTag, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import Kube, secret_data
from libs.common.reconcile import Context, Reconciler, Result
from libs.common.runtime.redact import redact_url, sanitize_message
from libs.git import Credentials, GitError, GitRef, MirrorCache, ProxyConfig, git_env, revision
from libs.git.workdir import Author, PushTarget, SigningKey, update_and_push
from libs.setters import ImageRef, SetterError, TemplateError, apply_setters, render, uses_field
from libs.setters import Result as SetterResult
from libs.setters.template import check as check_template

KIND = ImageUpdateAutomation.KIND
IMAGE_TAG_DURABLE = "image-update-image-tag"
INVALID_TEMPLATE = "InvalidCommitMessageTemplate"
SOURCE_NOT_FOUND = "SourceNotFound"
UNSUPPORTED_SOURCE = "UnsupportedSourceConfiguration"
UP_TO_DATE = "repository up-to-date"
RETRY_AFTER = 30.0
"""Seconds before a run that failed on something that may heal (Git, a missing source) is retried."""
REMOVED_FIELD_MESSAGE = (
    "template uses the removed field '.Updated' (gone since image.toolkit.fluxcd.io/v1beta2); "
    "use '.Changed' (e.g. '{{ range .Changed.Changes }}{{ .NewValue }}{{ end }}')"
)


class _Failure(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.message)
        self.result = result


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (an empty or missing selector matches everything)."""
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        values = req.values or []
        if req.operator == "In" and labels.get(req.key) not in values:
            return False
        if req.operator == "NotIn" and req.key in labels and labels[req.key] in values:
            return False
        if req.operator == "Exists" and req.key not in labels:
            return False
        if req.operator == "DoesNotExist" and req.key in labels:
            return False
    return True


def selector_problem(selector: LabelSelector | None) -> str | None:
    for req in (selector.match_expressions if selector else None) or []:
        if req.operator in ("In", "NotIn"):
            if not req.values:
                return f"values must be non-empty for operator {req.operator!r} (key {req.key!r})"
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                return f"values must be empty for operator {req.operator!r} (key {req.key!r})"
        else:
            return f"{req.operator!r} is not a valid label selector operator"
    return None


def _latest(raw: Mapping[str, Any]) -> ImageRef | None:
    """An ImagePolicy's selection: v1 `latestRef`, else v1beta2 `latestImage` (`name:tag[@digest]`)."""
    status = raw.get("status") or {}
    ref = status.get("latestRef") or {}
    if ref.get("name") and ref.get("tag"):
        return ImageRef(str(ref["name"]), str(ref["tag"]), ref.get("digest") or None)
    image = status.get("latestImage")
    if isinstance(image, str) and image:
        digest = None
        if "@" in image:
            image, digest = image.split("@", 1)
        slash = image.rfind("/")
        colon = image.rfind(":")
        if colon > slash:
            return ImageRef(image[:colon], image[colon + 1 :], digest)
    return None


def _clean_path(path: str | None) -> str | None:
    """`update.path` as a clean relative path, or None when it leaves the repository."""
    clean = posixpath.normpath((path or ".").strip().lstrip("/") or ".")
    if clean == ".." or clean.startswith("../"):
        return None
    return clean


@dataclass(frozen=True)
class NamespacedName:
    """`.AutomationObject` in templates: prints as `namespace/name`, like Go's types.NamespacedName."""

    Name: str
    Namespace: str

    def __str__(self) -> str:
        return f"{self.Namespace}/{self.Name}"


@dataclass(frozen=True)
class TemplateData:
    """Flux's commit message template data."""

    AutomationObject: NamespacedName
    Changed: SetterResult
    Values: Mapping[str, str]


@dataclass
class _Batch:
    done: asyncio.Future[None]
    ids: set[str] = field(default_factory=set)
    # The trace of the latest event joined: the batch's run continues it, since the newest event
    # is the one that brings the change (an earlier one may have been a repeat).
    context: otel_context.Context | None = None


@dataclass
class ImageUpdater:
    """The ImageUpdateAutomation reconciler and its image.tag consumer, for one running service."""

    cache: MirrorCache
    bus: Bus
    kube: Kube
    batch_window: float = 0.2
    push_attempts: int = 5
    allow_file_urls: bool = False
    _batches: dict[str, _Batch] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def reconciler(self) -> Reconciler[ImageUpdateAutomation]:
        return Reconciler(kind=ImageUpdateAutomation, steps=[self.check_spec, self.automate])

    # --- steps -----------------------------------------------------------------------------------

    async def check_spec(self, ctx: Context[ImageUpdateAutomation]) -> Result | None:
        spec = ctx.obj.spec
        if spec.git is None:
            return Result.stall(
                meta.INVALID_SOURCE_CONFIGURATION, "spec.git is required: set git.commit.author.email"
            )
        template = spec.message_template()
        if uses_field(template, "Updated"):
            return Result.stall(meta.REMOVED_TEMPLATE_FIELD, REMOVED_FIELD_MESSAGE)
        try:
            check_template(template)
        except TemplateError as exc:
            return Result.stall(INVALID_TEMPLATE, f"invalid commit message template: {exc}")
        problem = selector_problem(spec.policy_selector)
        if problem is not None:
            return Result.stall(meta.INVALID_POLICY_SELECTOR, f"invalid policy selector: {problem}")
        if _clean_path(spec.update.path) is None:
            return Result.stall(
                meta.INVALID_PATH, f"update.path '{spec.update.path}' must stay inside the repository"
            )
        return None

    async def automate(self, ctx: Context[ImageUpdateAutomation]) -> Result | None:
        try:
            return await self._automate(ctx)
        except _Failure as failure:
            return failure.result

    # --- the work --------------------------------------------------------------------------------

    async def _automate(self, ctx: Context[ImageUpdateAutomation]) -> Result:
        obj = ctx.obj
        spec, status = obj.spec, obj.status
        assert spec.git is not None
        repo = await self._git_repository(obj)
        url = repo.spec.url
        self._check_url(url)
        checkout = self._checkout_ref(obj, repo)
        push_branch = (spec.git.push.branch if spec.git.push else None) or (
            checkout.branch_or_default if checkout.mode == "branch" else None
        )
        if not push_branch:
            raise _Failure(
                Result.stall(
                    meta.INVALID_SOURCE_CONFIGURATION,
                    f"git.push.branch must be set when checking out a {checkout.mode} (nothing to push to)",
                )
            )
        timeout = _seconds(repo.spec.timeout)
        creds = await self._credentials(repo)
        signing = await self._signing_key(obj)
        policies, observed = await self._policies(obj)
        update_path = _clean_path(spec.update.path) or "."
        now = _now()

        async with git_env(url, creds, connect_timeout=max(1, int(timeout))) as env:
            if (
                status.observed_policies == observed
                and status.observed_source_revision
                and status.observed_generation == obj.generation
            ):
                # Fast path: same policies, same branch head → no clone (one ls-remote).
                try:
                    remote = await self.cache.ls_remote(
                        url, checkout.ls_remote_patterns() or ["HEAD"], env=env, timeout=timeout
                    )
                    current = checkout.pinned() if checkout.mode == "commit" else checkout.resolve(remote)
                except GitError as exc:
                    raise _Failure(self._git_failed(exc)) from None
                if current.revision == status.observed_source_revision:
                    ctx.unchanged = True
                    status.last_automation_run_time = now
                    ready = ctx.condition(meta.READY)
                    return Result.ready(ready.message if ready and ready.status == "True" else UP_TO_DATE)

            values = dict(spec.git.commit.message_template_values or {})
            template = spec.message_template()
            auto = NamespacedName(obj.name, obj.namespace)

            async def edit(tree: Path) -> SetterResult:
                return await asyncio.to_thread(_apply_under, tree, update_path, policies)

            def message(changes: SetterResult) -> str:
                return render(template, TemplateData(auto, changes, values))

            author = spec.git.commit.author
            push_spec = spec.git.push
            try:
                outcome = await update_and_push(
                    self.cache,
                    url,
                    env,
                    checkout=checkout,
                    push=PushTarget(
                        push_branch,
                        force=push_branch
                        != (checkout.branch_or_default if checkout.mode == "branch" else None),
                        refspec=push_spec.refspec if push_spec and push_spec.refspec else None,
                        options=dict(push_spec.options or {}) if push_spec else {},
                    ),
                    # git refuses an empty name; Flux's name is optional.
                    author=Author(author.name or author.email, author.email),
                    edit=edit,
                    message=message,
                    timeout=timeout,
                    attempts=self.push_attempts,
                    signing=signing,
                )
            except TemplateError as exc:
                return Result.stall(INVALID_TEMPLATE, f"failed to render the commit message: {exc}")
            except SetterError as exc:
                return Result.failed(meta.UPDATE_FAILED, sanitize_message(str(exc)), after=RETRY_AFTER)
            except GitError as exc:
                return self._git_failed(exc)

        status.last_automation_run_time = now
        status.observed_policies = observed
        if outcome.commit is None:
            status.observed_source_revision = outcome.base.revision
            return Result.ready(UP_TO_DATE)
        commit = outcome.commit
        same_branch = checkout.mode == "branch" and push_branch == checkout.branch_or_default
        status.observed_source_revision = (
            revision(push_branch, commit) if same_branch else outcome.base.revision
        )
        status.last_push_commit = commit
        status.last_push_time = _now()
        ctx.revision = revision(push_branch, commit)
        await self._announce(obj, repo, push_branch, commit)
        return Result.ready(
            f"pushed commit '{commit[:7]}' to branch '{push_branch}'\n{_clip(outcome.message or '')}".rstrip()
        )

    def _git_failed(self, exc: GitError) -> Result:
        reason = meta.AUTHENTICATION_FAILED if exc.kind == "auth" else meta.GIT_OPERATION_FAILED
        return Result.failed(reason, sanitize_message(str(exc)), after=RETRY_AFTER)

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        problem = None
        if parts.scheme == "file" and not self.allow_file_urls:
            problem = "file:// URLs are disabled on this image-update service (SLUICE_ALLOW_FILE_URLS)"
        elif parts.scheme == "file":
            path = os.path.realpath(parts.path or "/")
            cache = os.path.realpath(self.cache.root)
            if (
                path == cache
                or path.startswith(cache.rstrip("/") + "/")
                or cache.startswith(path.rstrip("/") + "/")
            ):
                problem = "file:// URLs may not point into the image-update service's Git cache"
        elif not parts.hostname and "@" not in url:
            problem = "no host"
        if problem is not None:
            raise _Failure(Result.stall(meta.URL_INVALID, f"invalid URL '{redact_url(url)}': {problem}"))

    async def _git_repository(self, obj: ImageUpdateAutomation) -> GitRepository:
        ref = obj.spec.source_ref
        namespace = ref.namespace or obj.namespace
        raw = await self.kube.get(GitRepository.api_version(), "GitRepository", ref.name, namespace)
        if raw is None:
            raise _Failure(
                Result.failed(
                    SOURCE_NOT_FOUND,
                    f"referenced GitRepository '{namespace}/{ref.name}' not found",
                    after=RETRY_AFTER,
                )
            )
        try:
            repo = GitRepository.model_validate(raw)
        except ValueError as exc:
            raise _Failure(
                Result.failed(
                    meta.INVALID_SOURCE_CONFIGURATION,
                    f"GitRepository '{namespace}/{ref.name}' is invalid: {type(exc).__name__}",
                )
            ) from None
        if repo.spec.provider not in (None, "generic"):
            raise _Failure(
                Result.stall(
                    UNSUPPORTED_SOURCE,
                    f"GitRepository '{namespace}/{ref.name}' uses provider '{repo.spec.provider}', "
                    "which Sluice's image-update does not support yet (only Secret credentials)",
                )
            )
        return repo

    def _checkout_ref(self, obj: ImageUpdateAutomation, repo: GitRepository) -> GitRef:
        git = obj.spec.git
        ref = git.checkout.ref if git is not None and git.checkout is not None else repo.spec.ref
        if ref is None:
            return GitRef()
        result = GitRef(branch=ref.branch, tag=ref.tag, semver=ref.semver, name=ref.name, commit=ref.commit)
        try:
            result.validate()
        except ValueError as exc:
            raise _Failure(Result.stall(meta.INVALID_SOURCE_CONFIGURATION, str(exc))) from None
        return result

    async def _secret(self, namespace: str, name: str) -> dict[str, bytes]:
        try:
            secret = await self.kube.get("v1", "Secret", name, namespace)
        except Exception as exc:
            raise _Failure(
                Result.failed(
                    meta.AUTHENTICATION_FAILED,
                    f"failed to get secret '{namespace}/{name}': {type(exc).__name__}",
                )
            ) from None
        if secret is None:
            raise _Failure(
                Result.failed(
                    meta.AUTHENTICATION_FAILED,
                    f"failed to get secret '{namespace}/{name}': secrets \"{name}\" not found",
                )
            )
        return secret_data(secret)

    async def _credentials(self, repo: GitRepository) -> Credentials | None:
        spec = repo.spec
        creds: Credentials | None = None
        if spec.secret_ref is not None:
            creds = Credentials.from_secret(await self._secret(repo.namespace, spec.secret_ref.name))
        if spec.proxy_secret_ref is not None:
            data = await self._secret(repo.namespace, spec.proxy_secret_ref.name)
            address = data.get("address", b"").decode()
            if not address:
                raise _Failure(
                    Result.failed(
                        meta.AUTHENTICATION_FAILED,
                        f"invalid proxy secret '{repo.namespace}/{spec.proxy_secret_ref.name}': "
                        "key 'address' is missing",
                    )
                )
            proxy = ProxyConfig(
                address,
                (data.get("username") or b"").decode() or None,
                (data.get("password") or b"").decode() or None,
            )
            creds = Credentials(**{**vars(creds or Credentials()), "proxy": proxy})
        return creds

    async def _signing_key(self, obj: ImageUpdateAutomation) -> SigningKey | None:
        git = obj.spec.git
        key = git.commit.signing_key if git is not None else None
        if key is None:
            return None
        data = await self._secret(obj.namespace, key.secret_ref.name)
        name = f"{obj.namespace}/{key.secret_ref.name}"
        if key.type == "ssh":
            identity = data.get("identity")
            if not identity:
                raise _Failure(
                    Result.failed(
                        meta.INVALID_SOURCE_CONFIGURATION, f"signing key secret '{name}' has no 'identity'"
                    )
                )
            password = data.get("password")
            return SigningKey("ssh", identity.decode(), password.decode() if password else None)
        armored = data.get("git.asc")
        if not armored:
            raise _Failure(
                Result.failed(
                    meta.INVALID_SOURCE_CONFIGURATION, f"signing key secret '{name}' has no 'git.asc'"
                )
            )
        passphrase = data.get("passphrase")
        return SigningKey("openpgp", armored.decode(), passphrase.decode() if passphrase else None)

    async def _policies(
        self, obj: ImageUpdateAutomation
    ) -> tuple[dict[str, ImageRef], dict[str, StatusImageRef]]:
        """The selected policies with a latestRef: setters map (`ns:name`) and observedPolicies."""
        items, _ = await self.kube.list_objects(ImagePolicy.api_version(), ImagePolicy.KIND, obj.namespace)
        policies: dict[str, ImageRef] = {}
        observed: dict[str, StatusImageRef] = {}
        for raw in items:
            md = raw.get("metadata") or {}
            if not selector_matches(obj.spec.policy_selector, md.get("labels") or {}):
                continue
            latest = _latest(raw)
            if latest is None:
                continue
            name = str(md.get("name"))
            policies[f"{obj.namespace}:{name}"] = latest
            observed[name] = StatusImageRef(name=latest.name, tag=latest.tag, digest=latest.digest)
        return policies, observed

    async def _announce(
        self, obj: ImageUpdateAutomation, repo: GitRepository, branch: str, commit: str
    ) -> None:
        """git.commit, so source fetches the new commit now instead of at its interval."""
        await self.bus.publish(
            GitCommit(
                repository=ObjectRef(
                    api_version=GitRepository.api_version(),
                    kind="GitRepository",
                    namespace=repo.namespace,
                    name=repo.name,
                ),
                branch=branch,
                commit=commit,
                revision=revision(branch, commit),
                author=ObjectRef(
                    api_version=ImageUpdateAutomation.api_version(),
                    kind=KIND,
                    namespace=obj.namespace,
                    name=obj.name,
                    uid=obj.metadata.uid,
                ),
            ),
            # Not `GitRepository/<ns>/<name>@commit-<sha>`: source uses that id for the
            # reconcile.request it publishes on this event, and the stream de-duplicates ids
            # across subjects — sharing it would drop source's request.
            msg_id=f"GitRepository/{repo.namespace}/{repo.name}@{commit}",
        )

    # --- image.tag: batched into one reconcile per automation -----------------------------------

    def subscribe(self) -> None:
        self.bus.subscribe(
            IMAGE_TAG_DURABLE,
            subj.family_filter(names.IMAGE_TAG, ImagePolicy.KIND),
            ImageTag,
            self.on_image_tag,
            concurrency=64,
        )

    async def on_image_tag(self, tag: ImageTag, delivery: Delivery) -> None:
        """A policy selected a new image: after the batch window, reconcile every automation of its
        namespace that selects it (the message is acknowledged once that request is published)."""
        policy = tag.policy
        raw = await self.kube.get(ImagePolicy.api_version(), ImagePolicy.KIND, policy.name, policy.namespace)
        labels = ((raw or {}).get("metadata") or {}).get("labels") or {}
        autos, _ = await self.kube.list_objects(ImageUpdateAutomation.api_version(), KIND, policy.namespace)
        ident = delivery.msg_id or f"{policy.namespace}/{policy.name}@{tag.ref}"
        waits = []
        for raw_auto in autos:
            md = raw_auto.get("metadata") or {}
            spec = raw_auto.get("spec") or {}
            if spec.get("suspend"):
                continue
            try:
                selector = LabelSelector.model_validate(spec.get("policySelector") or {})
            except ValueError:
                selector = None
            if not selector_matches(selector, labels):
                continue
            waits.append(self._join(str(md.get("namespace") or policy.namespace), str(md.get("name")), ident))
        if waits:
            await asyncio.gather(*waits)

    async def _join(self, namespace: str, name: str, ident: str) -> None:
        key = f"{namespace}/{name}"
        batch = self._batches.get(key)
        if batch is None:
            batch = _Batch(asyncio.get_running_loop().create_future())
            self._batches[key] = batch
            task = asyncio.create_task(self._flush(namespace, name, batch), name=f"batch {key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.ids.add(ident)
        batch.context = otel_context.get_current()
        await asyncio.shield(batch.done)

    async def _flush(self, namespace: str, name: str, batch: _Batch) -> None:
        key = f"{namespace}/{name}"
        try:
            await asyncio.sleep(self.batch_window)
            self._batches.pop(key, None)
            digest = hashlib.sha256("\n".join(sorted(batch.ids)).encode()).hexdigest()[:16]
            if batch.context is not None:
                otel_context.attach(batch.context)  # this task's own context; it ends with the task
            await self.bus.publish(
                ReconcileRequest(
                    object=ObjectRef(
                        api_version=ImageUpdateAutomation.api_version(),
                        kind=KIND,
                        namespace=namespace,
                        name=name,
                    ),
                    reason="dependency",
                ),
                msg_id=f"{KIND}/{namespace}/{name}@images-{digest}",
            )
            batch.done.set_result(None)
        except BaseException as exc:
            self._batches.pop(key, None)
            if not batch.done.done():
                batch.done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


def _apply_under(tree: Path, update_path: str, policies: Mapping[str, ImageRef]) -> SetterResult:
    """Apply the setters under `update_path`, which must be a directory inside the work tree (a
    symlink leading out of the repository is refused, so no file outside it is ever written)."""
    root = tree / update_path
    if not root.is_dir():
        raise SetterError(f"update.path '{update_path}' does not exist in the repository")
    if not root.resolve().is_relative_to(tree.resolve()):
        raise SetterError(f"update.path '{update_path}' leads out of the repository (symbolic link)")
    return apply_setters(root, policies)


MAX_MESSAGE = 8192
"""The commit message is quoted in the Ready condition and the event up to this many characters."""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "\n…(truncated)"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(duration: str | None) -> float:
    from libs.common.api.duration import parse_duration

    try:
        return parse_duration(duration or "60s")
    except ValueError:
        return 60.0
