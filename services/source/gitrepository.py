"""GitRepository: fetch a Git reference into a tar.gz artifact, as Flux's source-controller does.

One reconcile, in order:
1. `check_spec`: fields Sluice does not support yet stall the object with reason
   `UnsupportedField` and a message naming them (never silently ignored); an impossible
   reference stalls with `InvalidSourceConfiguration`.
2. `reconcile_git`:
   - credentials from `secretRef` / `proxySecretRef` (missing → `FetchFailed`/`AuthenticationFailed`);
   - `include`d GitRepositories' artifacts (missing → `IncludeUnavailable`);
   - one `ls-remote` resolves branch/tag/semver/name refs; when that revision is the stored
     artifact's, it is still in storage and no content-affecting field changed, the run ends
     there (no fetch, no event: Flux's no-op fast path);
   - otherwise a shallow delta fetch into the shared per-URL mirror, an export of the commit's
     tree, the includes copied in, Flux's exclusions applied, a tar.gz stored under its digest,
     `artifact.ready` published (only for a new revision or digest), `status.artifact` updated,
     old artifacts garbage-collected (the last 2 kept).
Failures keep the last good artifact and set `FetchFailed` / `StorageOperationFailed` with
Flux's reasons; the controller's summarize turns the result into Ready/Reconciling/Stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from libs.common import names
from libs.common.api import meta
from libs.common.api.duration import parse_duration
from libs.common.api.source.gitrepository import GitRepository, GitRepositoryInclude
from libs.common.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    artifact_url,
    gc,
    pack_dir,
    safe_extract,
    store_artifact,
)
from libs.common.bus import Bus, Delivery
from libs.common.events import ArtifactReady, GitCommit, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import Kube, secret_data
from libs.common.reconcile import Context, Reconciler, Result
from libs.common.runtime.redact import redact_url, sanitize_message
from libs.git import (
    Credentials,
    Git,
    GitError,
    GitRef,
    MirrorCache,
    ProxyConfig,
    RefNotFound,
    Resolved,
    Submodule,
    VerificationError,
    VerifyKeys,
    git_env,
    resolve_submodule_url,
    revision,
    source_matcher,
    verify_commit,
    verify_tag,
)

KIND = GitRepository.KIND
UNSUPPORTED_FIELD = "UnsupportedField"
INCLUDE_NOT_FOUND = "NotFound"
INCLUDE_NO_ARTIFACT = "NoArtifact"
DIGEST_KEY = f"{GitRepository.GROUP}/{meta.META_DIGEST}"
GIT_COMMIT_DURABLE = "source-git-commit"
INCLUDE_DURABLE = "source-gitrepository-include"
MAX_SUBMODULE_DEPTH = 5
MAX_INCLUDE_WALK = 100
INCLUDE_CYCLE = "IncludeCycle"


class _Failure(Exception):
    """Ends a run: the condition to set (if any) and the result."""

    def __init__(
        self, result: Result, condition: str | None = None, status: str = meta.CONDITION_TRUE
    ) -> None:
        super().__init__(result.message)
        self.result = result
        self.condition = condition
        self.status = status


def _fetch_failed(reason: str, message: str) -> _Failure:
    return _Failure(Result.failed(reason, sanitize_message(message)), meta.FETCH_FAILED)


def unsupported_fields(obj: GitRepository) -> list[str]:
    """The spec fields this object sets that Sluice cannot honour yet."""
    spec = obj.spec
    found = []
    if spec.provider != "generic":
        found.append(f"spec.provider={spec.provider} (only 'generic' Secret-based auth)")
    if spec.service_account_name:
        found.append("spec.serviceAccountName (workload identity)")
    if spec.proxy_secret_ref is not None and urlsplit(spec.url).scheme not in ("http", "https"):
        found.append("spec.proxySecretRef with an ssh URL (proxies apply to http(s) only)")
    return found


def git_ref(obj: GitRepository) -> GitRef:
    ref = obj.spec.ref
    if ref is None:
        return GitRef()
    return GitRef(branch=ref.branch, tag=ref.tag, semver=ref.semver, name=ref.name, commit=ref.commit)


def _reason_for(exc: GitError) -> str:
    return meta.AUTHENTICATION_FAILED if exc.kind == "auth" else meta.GIT_OPERATION_FAILED


def _include_path(include: GitRepositoryInclude) -> tuple[str, str]:
    """(fromPath, toPath) as clean relative paths; ValueError when one leaves the root."""
    paths = []
    for value in (include.from_path or "", include.to_path or include.repository.name):
        clean = posixpath.normpath(value.strip().lstrip("/") or ".")
        if clean == ".." or clean.startswith("../"):
            raise ValueError(f"include path {value!r} leaves the repository root")
        paths.append("" if clean == "." else clean)
    return paths[0], paths[1]


def _dump(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(by_alias=True, exclude_none=True, mode="json")


def _build(tree: Path, ignore: str | None, sparse: list[str] | None) -> bytes:
    """Pack ``tree`` with Flux's exclusions (blocking: run in a thread)."""
    matcher = source_matcher(tree, ignore)
    keep = [posixpath.normpath(d.strip().removeprefix("./")).strip("/") for d in sparse or [] if d.strip()]
    keep = [d for d in keep if d not in ("", ".")]
    real_root = os.path.realpath(tree)

    def exclude(rel: str) -> bool:
        if keep:
            bare = rel.rstrip("/")
            inside = any(bare == d or bare.startswith(d + "/") for d in keep)
            ancestor = rel.endswith("/") and any(d.startswith(bare + "/") for d in keep)
            if not (inside or ancestor):
                return True
        if matcher.match(rel):
            return True
        path = tree / rel.rstrip("/")
        if path.is_symlink():
            # Absolute links and links leaving the tree are dropped (Flux drops every symlink).
            if os.path.isabs(os.readlink(path)):
                return True
            target = os.path.realpath(path)
            return not (target == real_root or target.startswith(real_root + os.sep))
        return False

    return pack_dir(tree, exclude=exclude)


def _copy_include(extracted: Path, tree: Path, from_path: str, to_path: str) -> None:
    source = extracted / from_path if from_path else extracted
    if not source.is_dir():
        raise ValueError(f"fromPath '{from_path}' does not exist in the included artifact")
    dest = tree / to_path if to_path else tree
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)


@dataclass
class GitRepositorySource:
    """The GitRepository reconciler and its consumers, for one running source service."""

    store: ArtifactStore
    cache: MirrorCache
    bus: Bus
    kube: Kube
    base_url: str = ""
    allow_file_urls: bool = False
    _base_url_set: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.base_url:
            self._base_url_set.set()

    def set_base_url(self, url: str) -> None:
        if not self.base_url:
            self.base_url = url.rstrip("/")
        self._base_url_set.set()

    @property
    def git(self) -> Git:
        return self.cache.git

    def reconciler(self) -> Reconciler[GitRepository]:
        return Reconciler(
            kind=GitRepository, steps=[self.check_spec, self.reconcile_git], finalize=[self.finalize]
        )

    # --- steps -----------------------------------------------------------------------------------

    async def check_spec(self, ctx: Context[GitRepository]) -> Result | None:
        unsupported = unsupported_fields(ctx.obj)
        if unsupported:
            return Result.stall(
                UNSUPPORTED_FIELD,
                "Sluice does not support "
                + "; ".join(unsupported)
                + " yet; remove the field(s) to reconcile",
            )
        parts = urlsplit(ctx.obj.spec.url)
        problem = None
        if parts.scheme == "file" and not self.allow_file_urls:
            # In a shared cluster file:// would let anyone read repositories on the service's own
            # filesystem; only a single-user setup (sluice up) turns it on.
            problem = "file:// URLs are disabled on this source service (SLUICE_ALLOW_FILE_URLS)"
        elif parts.scheme == "file":
            # The service's own cache holds every tenant's mirrors: never readable through file://.
            path = await asyncio.to_thread(os.path.realpath, parts.path or "/")
            cache = await asyncio.to_thread(os.path.realpath, self.cache.root)
            if (
                path == cache
                or path.startswith(cache.rstrip("/") + "/")
                or cache.startswith(path.rstrip("/") + "/")
            ):
                problem = "file:// URLs may not point into the source service's Git cache"
        elif not parts.hostname:
            problem = "no host"
        if problem is not None:
            message = f"invalid URL '{redact_url(ctx.obj.spec.url)}': {problem}"
            ctx.set_condition(meta.FETCH_FAILED, meta.CONDITION_TRUE, meta.URL_INVALID, message)
            return Result.stall(meta.URL_INVALID, message)
        try:
            git_ref(ctx.obj).validate()
            for include in ctx.obj.spec.include or []:
                _include_path(include)
        except ValueError as exc:
            return Result.stall(meta.INVALID_SOURCE_CONFIGURATION, str(exc))
        return None

    async def reconcile_git(self, ctx: Context[GitRepository]) -> Result | None:
        try:
            return await self._reconcile(ctx)
        except _Failure as failure:
            if failure.condition is not None:
                ctx.set_condition(
                    failure.condition, failure.status, failure.result.reason, failure.result.message
                )
            return failure.result

    async def finalize(self, ctx: Context[GitRepository]) -> Result | None:
        """Delete every artifact of the object, as Flux does on deletion."""
        obj = ctx.obj
        try:
            await gc(self.store, kind=KIND, namespace=obj.namespace, name=obj.name, keep=0)
        except ArtifactError as exc:
            return Result.failed(
                meta.STORAGE_OPERATION_FAILED, f"garbage collection failed: {exc}", after=5.0
            )
        return None

    # --- the work --------------------------------------------------------------------------------

    async def _reconcile(self, ctx: Context[GitRepository]) -> Result:
        obj = ctx.obj
        spec, status = obj.spec, obj.status
        ref = git_ref(obj)
        timeout = parse_duration(spec.timeout or "60s")
        creds = await self._credentials(obj)
        keys = await self._verify_keys(ctx)
        included = await self._includes(ctx)

        stored = status.artifact
        in_storage = stored is not None and await self._exists(stored.path)
        if stored is not None and not in_storage:
            ctx.remove_condition(meta.ARTIFACT_IN_STORAGE)

        async with git_env(spec.url, creds, connect_timeout=max(1, int(timeout))) as env:
            resolved = await self._resolve(spec.url, ref, env, timeout)
            content_same = (
                status.observed_ignore == spec.ignore
                and bool(status.observed_recurse_submodules) == bool(spec.recurse_submodules)
                and _dump(status.observed_include) == _dump(spec.include)
                and status.observed_sparse_checkout == spec.sparse_checkout
                and [a.digest for a in status.included_artifacts or []] == [a.digest for a in included]
            )
            if spec.verify is not None:
                verified = ctx.condition(meta.SOURCE_VERIFIED)
                content_same = (
                    content_same
                    and verified is not None
                    and verified.status == meta.CONDITION_TRUE
                    and status.source_verification_mode == spec.verify.mode
                )
            if stored is not None and in_storage and content_same and stored.revision == resolved.revision:
                ctx.log.info("no changes since last reconciliation: observed revision '%s'", stored.revision)
                return self._up_to_date(ctx, stored.revision)
            if stored is not None and stored.revision != resolved.revision:
                # Flux's ArtifactOutdated: stays if the new revision cannot be stored this run.
                ctx.set_condition(
                    meta.ARTIFACT_OUTDATED,
                    meta.CONDITION_TRUE,
                    meta.NEW_REVISION,
                    f"new upstream revision '{resolved.revision}'",
                )
            tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sluice-gitrepo-"))
            try:
                tree = tmp / "tree"
                await asyncio.to_thread(tree.mkdir)
                resolved, subject = await self._checkout(
                    spec.url,
                    ref,
                    resolved,
                    env,
                    timeout,
                    tree,
                    creds,
                    bool(spec.recurse_submodules),
                    ctx,
                    keys,
                )
                await self._copy_includes(obj, included, tmp, tree)
                try:
                    data = await asyncio.to_thread(_build, tree, spec.ignore, spec.sparse_checkout)
                except (ArtifactError, OSError) as exc:
                    raise _Failure(
                        Result.failed(meta.STORAGE_OPERATION_FAILED, f"failed to archive the source: {exc}"),
                        meta.STORAGE_OPERATION_FAILED,
                    ) from exc
            finally:
                await asyncio.to_thread(shutil.rmtree, tmp, True)
        return await self._store(ctx, resolved, subject, data, included)

    def _up_to_date(self, ctx: Context[GitRepository], revision: str) -> Result:
        # Nothing to announce — unless the object recovers from a failure, which is an event.
        ready = ctx.condition(meta.READY)
        ctx.unchanged = ready is not None and ready.status == meta.CONDITION_TRUE
        ctx.revision = revision
        stored = ctx.obj.status.artifact
        if stored is not None and self.base_url:
            # The advertised address may have changed since the artifact was stored (as Flux does).
            stored.url = artifact_url(self.base_url, stored.path)
        message = f"stored artifact for revision '{revision}'"
        ctx.set_condition(meta.ARTIFACT_IN_STORAGE, meta.CONDITION_TRUE, meta.SUCCEEDED, message)
        for cond in (
            meta.FETCH_FAILED,
            meta.STORAGE_OPERATION_FAILED,
            meta.INCLUDE_UNAVAILABLE,
            meta.ARTIFACT_OUTDATED,
        ):
            ctx.remove_condition(cond)
        return Result.ready(message)

    async def _exists(self, path: str) -> bool:
        try:
            return await self.store.exists(path)
        except ArtifactError:
            return False

    async def _credentials(self, obj: GitRepository) -> Credentials | None:
        spec = obj.spec
        creds: Credentials | None = None
        if spec.secret_ref is not None:
            data = await self._secret(obj, spec.secret_ref.name)
            creds = Credentials.from_secret(data)
        if spec.proxy_secret_ref is not None:
            data = await self._secret(obj, spec.proxy_secret_ref.name)
            address = data.get("address", b"").decode()
            if not address:
                raise _fetch_failed(
                    meta.AUTHENTICATION_FAILED,
                    f"invalid proxy secret '{obj.namespace}/{spec.proxy_secret_ref.name}': key 'address' is missing",
                )
            proxy = ProxyConfig(
                address,
                (data.get("username") or b"").decode() or None,
                (data.get("password") or b"").decode() or None,
            )
            base = creds or Credentials()
            creds = Credentials(**{**vars(base), "proxy": proxy})
        return creds

    async def _secret(self, obj: GitRepository, name: str) -> dict[str, bytes]:
        try:
            secret = await self.kube.get("v1", "Secret", name, obj.namespace)
        except Exception as exc:
            raise _fetch_failed(
                meta.AUTHENTICATION_FAILED,
                f"failed to get secret '{obj.namespace}/{name}': {type(exc).__name__}",
            ) from None
        if secret is None:
            raise _fetch_failed(
                meta.AUTHENTICATION_FAILED,
                f"failed to get secret '{obj.namespace}/{name}': secrets \"{name}\" not found",
            )
        return secret_data(secret)

    async def _resolve(self, url: str, ref: GitRef, env: dict[str, str], timeout: float) -> Resolved:
        """One ls-remote for branch/tag/semver/name refs; a commit ref resolves without the remote."""
        if ref.mode == "commit":
            return ref.pinned()
        try:
            remote = await self.cache.ls_remote(url, ref.ls_remote_patterns(), env=env, timeout=timeout)
            return ref.resolve(remote)
        except RefNotFound as exc:
            # An empty repository has no refs at all: Flux's EmptyGitRepository.
            with contextlib.suppress(GitError):
                everything = await self.cache.ls_remote(
                    url, ["refs/heads/*", "refs/tags/*"], env=env, timeout=timeout
                )
                if not everything.refs:
                    raise _fetch_failed(
                        meta.EMPTY_GIT_REPOSITORY, f"git repository '{redact_url(url)}' is empty: no commits"
                    ) from None
            raise _fetch_failed(
                meta.GIT_OPERATION_FAILED, f"failed to checkout and determine revision: {exc}"
            ) from None
        except GitError as exc:
            raise _fetch_failed(
                _reason_for(exc), f"failed to checkout and determine revision: {exc}"
            ) from None

    async def _checkout(
        self,
        url: str,
        ref: GitRef,
        resolved: Resolved,
        env: dict[str, str],
        timeout: float,
        tree: Path,
        creds: Credentials | None = None,
        submodules: bool = False,
        ctx: Context[GitRepository] | None = None,
        keys: VerifyKeys | None = None,
    ) -> tuple[Resolved, str]:
        """Bring the commit into the mirror (a delta fetch unless it is there already) and export
        it, with its submodules when asked."""
        try:
            async with self.cache.locked(url) as mirror:
                if not await self.cache.has_commit(mirror, resolved.commit):
                    resolved = await self._fetch(mirror, url, ref, resolved, env, timeout)
                elif ref.mode == "commit" and ref.branch:
                    await self._fetch_commit_on_branch(mirror, url, ref, env, timeout)
                elif ref.mode == "commit":
                    # Nothing asked the remote yet: the cached objects may be another user's fetch.
                    await self.cache.check_access(url, env=env, timeout=timeout)
                if ctx is not None and keys is not None:
                    await self._verify(ctx, mirror, url, resolved, keys, env, timeout)
                await self.cache.export(mirror, resolved.commit, tree, timeout=timeout)
                subject = await self.cache.subject(mirror, resolved.commit)
                nested = await self.cache.submodules(mirror, resolved.commit) if submodules else []
            # Outside the parent's lock: a submodule may live at the same URL.
            await self._submodules(url, nested, tree, env, timeout, depth=1)
        except GitError as exc:
            raise _fetch_failed(
                _reason_for(exc), f"failed to checkout and determine revision: {exc}"
            ) from None
        return resolved, subject

    async def _submodules(
        self,
        parent_url: str,
        submodules: list[Submodule],
        tree: Path,
        env: dict[str, str],
        timeout: float,
        depth: int,
    ) -> None:
        """Check out each submodule at its pinned commit into its path, recursively. Credentials
        go only to submodules on the parent's host; other hosts get none."""
        if submodules and depth > MAX_SUBMODULE_DEPTH:
            raise GitError(f"submodules nested deeper than {MAX_SUBMODULE_DEPTH} levels")
        parent = urlsplit(parent_url)
        for sub in submodules:
            rel = posixpath.normpath(sub.path)
            if rel.startswith(("/", "..")) or rel in (".", ".git"):
                raise GitError(f"submodule path '{sub.path}' leaves the repository")
            url = resolve_submodule_url(parent_url, sub.url)
            target = urlsplit(url)
            if target.scheme not in ("http", "https", "ssh") and target.scheme != parent.scheme:
                raise GitError(f"submodule '{sub.path}' has an unsupported URL '{redact_url(url)}'")
            same_host = (target.scheme, target.netloc) == (parent.scheme, parent.netloc)
            async with contextlib.AsyncExitStack() as stack:
                sub_env = env if same_host else await stack.enter_async_context(git_env(url, None))
                async with self.cache.locked(url) as mirror:
                    if await self.cache.has_commit(mirror, sub.commit):
                        await self.cache.check_access(url, env=sub_env, timeout=timeout)
                    else:
                        try:
                            await self.cache.fetch(mirror, url, [sub.commit], env=sub_env, timeout=timeout)
                        except GitError as exc:
                            if exc.kind in ("auth", "host_key", "timeout"):
                                raise
                            await self.cache.fetch(
                                mirror,
                                url,
                                ["+refs/heads/*:refs/heads/*"],
                                env=sub_env,
                                timeout=timeout,
                                depth=None,
                            )
                    if not await self.cache.has_commit(mirror, sub.commit):
                        raise GitError(
                            f"submodule '{sub.path}': commit {sub.commit} not found in '{redact_url(url)}'"
                        )
                    dest = tree / rel
                    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
                    await self.cache.export(mirror, sub.commit, dest, timeout=timeout)
                    nested = await self.cache.submodules(mirror, sub.commit)
                await self._submodules(url, nested, dest, sub_env, timeout, depth + 1)

    async def _verify_keys(self, ctx: Context[GitRepository]) -> VerifyKeys | None:
        """The public keys of `spec.verify.secretRef` (None without `spec.verify`)."""
        verify = ctx.obj.spec.verify
        if verify is None:
            ctx.remove_condition(meta.SOURCE_VERIFIED)
            ctx.obj.status.source_verification_mode = None
            return None
        name = verify.secret_ref.name
        secret = await self.kube.get("v1", "Secret", name, ctx.obj.namespace)
        if secret is None:
            message = f'PGP public keys secret error: secrets "{name}" not found'
            raise _Failure(
                Result.failed(meta.VERIFICATION_ERROR, message), meta.SOURCE_VERIFIED, meta.CONDITION_FALSE
            )
        return VerifyKeys.from_secret(secret_data(secret))

    async def _verify(
        self,
        ctx: Context[GitRepository],
        mirror: Path,
        url: str,
        resolved: Resolved,
        keys: VerifyKeys,
        env: dict[str, str],
        timeout: float,
    ) -> None:
        """Verify the commit and/or tag signature as `spec.verify.mode` asks (the mirror is held)."""
        verify = ctx.obj.spec.verify
        assert verify is not None
        mode = verify.mode
        lines = []
        try:
            if mode in ("Tag", "TagAndHEAD"):
                if resolved.tag is None:
                    raise VerificationError(
                        f"cannot verify tag signature(s) with mode '{mode}': the reference is not a tag"
                    )
                tag_ref = f"refs/tags/{resolved.tag}"
                await self.cache.fetch(mirror, url, [f"+{tag_ref}:{tag_ref}"], env=env, timeout=timeout)
                key = await verify_tag(self.git, mirror, tag_ref, keys)
                lines.append(f"tag '{resolved.tag}' with key '{key}'")
            if mode in ("HEAD", "head", "TagAndHEAD"):
                key = await verify_commit(self.git, mirror, resolved.commit, keys)
                lines.append(f"commit '{resolved.commit}' with key '{key}'")
        except VerificationError as exc:
            raise _Failure(
                Result.failed(meta.VERIFICATION_ERROR, sanitize_message(str(exc))),
                meta.SOURCE_VERIFIED,
                meta.CONDITION_FALSE,
            ) from None
        message = "verified signature of\n" + "\n".join(f"\t- {line}" for line in lines)
        ctx.set_condition(meta.SOURCE_VERIFIED, meta.CONDITION_TRUE, meta.SUCCEEDED, message)
        ctx.obj.status.source_verification_mode = mode

    async def _fetch(
        self, mirror: Path, url: str, ref: GitRef, resolved: Resolved, env: dict[str, str], timeout: float
    ) -> Resolved:
        if ref.mode == "commit":
            if ref.branch:
                await self._fetch_commit_on_branch(mirror, url, ref, env, timeout)
            else:
                try:
                    await self.cache.fetch(mirror, url, [resolved.commit], env=env, timeout=timeout)
                except GitError as exc:
                    if exc.kind in ("auth", "host_key", "timeout"):
                        raise
                    await self.cache.fetch(
                        mirror, url, ["+refs/heads/*:refs/heads/*"], env=env, timeout=timeout, depth=None
                    )
            if not await self.cache.has_commit(mirror, resolved.commit):
                raise RefNotFound(f"unable to resolve commit '{resolved.commit}' in '{redact_url(url)}'")
            return resolved
        remote_ref = resolved.remote_ref or ""
        await self.cache.fetch(mirror, url, [f"+{remote_ref}:{remote_ref}"], env=env, timeout=timeout)
        commit = await self.cache.rev_parse(mirror, remote_ref)
        if commit == resolved.commit:
            return resolved
        # The ref moved between ls-remote and fetch: take what was fetched.
        name = {"branch": ref.branch_or_default, "name": ref.name}.get(ref.mode, resolved.tag)
        return Resolved(remote_ref, commit, revision(name, commit), resolved.tag)

    async def _fetch_commit_on_branch(
        self, mirror: Path, url: str, ref: GitRef, env: dict[str, str], timeout: float
    ) -> None:
        """Flux's commit + branch: the branch must contain the commit."""
        branch_ref = f"refs/heads/{ref.branch}"
        commit = (ref.commit or "").lower()
        await self.cache.fetch(
            mirror, url, [f"+{branch_ref}:{branch_ref}"], env=env, timeout=timeout, depth=None
        )
        if not await self.cache.has_commit(mirror, commit) or not await self.cache.is_ancestor(
            mirror, commit, branch_ref
        ):
            raise RefNotFound(f"unable to resolve commit '{commit}' on branch '{ref.branch}'")

    # --- include ---------------------------------------------------------------------------------

    async def _includes(self, ctx: Context[GitRepository]) -> list[Any]:
        """The artifacts of the included GitRepositories (IncludeUnavailable when one has none)."""
        obj = ctx.obj
        artifacts = []
        for include in obj.spec.include or []:
            name = include.repository.name
            other = await self._get_include(obj, name)
            if other.status.artifact is None:
                raise _Failure(
                    Result.failed(INCLUDE_NO_ARTIFACT, f"no artifact available for include '{name}'"),
                    meta.INCLUDE_UNAVAILABLE,
                )
            artifacts.append(other.status.artifact)
        await self._check_include_cycle(obj)
        if obj.spec.include:
            ctx.remove_condition(meta.INCLUDE_UNAVAILABLE)
        return artifacts

    async def _get_include(self, obj: GitRepository, name: str) -> GitRepository:
        raw = await self.kube.get(GitRepository.api_version(), KIND, name, obj.namespace)
        if raw is None:
            raise _Failure(
                Result.failed(
                    INCLUDE_NOT_FOUND,
                    f"could not get resource for include '{name}': gitrepositories \"{name}\" not found",
                ),
                meta.INCLUDE_UNAVAILABLE,
            )
        return GitRepository.model_validate(raw)

    async def _check_include_cycle(self, obj: GitRepository) -> None:
        """An include chain leading back to this object would rebuild forever: stall instead."""
        seen: set[str] = set()
        pending = [(inc.repository.name, [obj.name]) for inc in obj.spec.include or []]
        while pending:
            name, chain = pending.pop()
            if name == obj.name:
                path = " -> ".join([*chain, name])
                raise _Failure(
                    Result.stall(INCLUDE_CYCLE, f"include cycle: {path}"), meta.INCLUDE_UNAVAILABLE
                )
            if name in seen or len(seen) > MAX_INCLUDE_WALK:
                continue
            seen.add(name)
            raw = await self.kube.get(GitRepository.api_version(), KIND, name, obj.namespace)
            for inc in ((raw or {}).get("spec") or {}).get("include") or []:
                pending.append(((inc.get("repository") or {}).get("name", ""), [*chain, name]))

    async def _copy_includes(self, obj: GitRepository, artifacts: list[Any], tmp: Path, tree: Path) -> None:
        for i, (include, artifact) in enumerate(zip(obj.spec.include or [], artifacts, strict=True)):
            from_path, to_path = _include_path(include)
            try:
                data = await self.store.get(artifact.path)
                extracted = tmp / f"include-{i}"
                await asyncio.to_thread(safe_extract, data, extracted)
                await asyncio.to_thread(_copy_include, extracted, tree, from_path, to_path)
            except (ArtifactNotFound, ArtifactError, ValueError, OSError) as exc:
                raise _Failure(
                    Result.failed(
                        INCLUDE_NO_ARTIFACT,
                        f"failed to copy artifact of include '{include.repository.name}': {exc}",
                    ),
                    meta.INCLUDE_UNAVAILABLE,
                ) from None

    # --- storing and announcing ------------------------------------------------------------------

    async def _store(
        self, ctx: Context[GitRepository], resolved: Resolved, subject: str, data: bytes, included: list[Any]
    ) -> Result:
        obj = ctx.obj
        status = obj.status
        if not self._base_url_set.is_set():
            async with asyncio.timeout(30):
                await self._base_url_set.wait()
        try:
            artifact = await store_artifact(
                self.store,
                kind=KIND,
                namespace=obj.namespace,
                name=obj.name,
                data=data,
                revision=resolved.revision,
                base_url=self.base_url,
            )
        except ArtifactError as exc:
            raise _Failure(
                Result.failed(meta.STORAGE_OPERATION_FAILED, f"failed to store artifact: {exc}"),
                meta.STORAGE_OPERATION_FAILED,
            ) from None
        previous = status.artifact
        new = previous is None or (previous.revision, previous.digest) != (artifact.revision, artifact.digest)
        if new:
            # Announce before recording: a failed publish leaves the status as it was, so the
            # retry announces again (msg_id de-duplicates a repeat).
            await self.bus.publish(
                ArtifactReady(
                    source=ObjectRef(
                        api_version=GitRepository.api_version(),
                        kind=KIND,
                        namespace=obj.namespace,
                        name=obj.name,
                        uid=obj.metadata.uid,
                    ),
                    revision=artifact.revision,
                    digest=artifact.digest or "",
                    url=artifact.url,
                    path=artifact.path,
                    size=artifact.size,
                ),
                # The revision is part of the id: a new ref at the same content is news too.
                msg_id=f"{KIND}/{obj.namespace}/{obj.name}@{artifact.digest}#{artifact.revision}",
            )
        else:
            artifact.last_update_time = previous.last_update_time if previous else artifact.last_update_time
        status.artifact = artifact
        status.included_artifacts = included or None
        status.observed_ignore = obj.spec.ignore
        status.observed_recurse_submodules = obj.spec.recurse_submodules
        status.observed_include = obj.spec.include
        status.observed_sparse_checkout = obj.spec.sparse_checkout
        message = f"stored artifact for revision '{artifact.revision}'"
        ctx.set_condition(meta.ARTIFACT_IN_STORAGE, meta.CONDITION_TRUE, meta.SUCCEEDED, message)
        for cond in (
            meta.FETCH_FAILED,
            meta.STORAGE_OPERATION_FAILED,
            meta.INCLUDE_UNAVAILABLE,
            meta.ARTIFACT_OUTDATED,
        ):
            ctx.remove_condition(cond)
        ctx.revision = artifact.revision
        ctx.event_metadata[DIGEST_KEY] = artifact.digest or ""
        if new:
            ctx.event(meta.NEW_ARTIFACT, f"stored artifact for commit '{sanitize_message(subject)}'")
            ctx.unchanged = True  # the NewArtifact event is the event of this run, as in Flux
        try:
            deleted = await gc(
                self.store, kind=KIND, namespace=obj.namespace, name=obj.name, current=artifact.path
            )
            if deleted:
                ctx.log.info("garbage collected %d artifact(s)", len(deleted))
        except ArtifactError as exc:
            ctx.log.warning("garbage collection failed: %s", exc)
        return Result.ready(message)

    # --- consumers -------------------------------------------------------------------------------

    def subscribe(self) -> None:
        self.bus.subscribe(
            GIT_COMMIT_DURABLE, subj.family_filter(names.GIT_COMMIT, KIND), GitCommit, self.on_commit
        )
        self.bus.subscribe(
            INCLUDE_DURABLE, subj.family_filter(names.ARTIFACT_READY, KIND), ArtifactReady, self.on_artifact
        )

    async def on_commit(self, commit: GitCommit, delivery: Delivery) -> None:
        """A pushed commit: reconcile that GitRepository now instead of at its next interval."""
        repo = commit.repository
        await self.bus.publish(
            ReconcileRequest(
                object=ObjectRef(
                    api_version=GitRepository.api_version(),
                    kind=KIND,
                    namespace=repo.namespace,
                    name=repo.name,
                ),
                reason="changed",
            ),
            msg_id=f"{KIND}/{repo.namespace}/{repo.name}@commit-{commit.commit}",
        )

    async def on_artifact(self, ready: ArtifactReady, delivery: Delivery) -> None:
        """A GitRepository got a new artifact: rebuild the ones that include it."""
        source = ready.source
        items, _ = await self.kube.list_objects(GitRepository.api_version(), KIND, source.namespace)
        for raw in items:
            includes = (raw.get("spec") or {}).get("include") or []
            if not any((inc.get("repository") or {}).get("name") == source.name for inc in includes):
                continue
            md = raw.get("metadata") or {}
            await self.bus.publish(
                ReconcileRequest(
                    object=ObjectRef(
                        api_version=GitRepository.api_version(),
                        kind=KIND,
                        namespace=md.get("namespace", ""),
                        name=md.get("name", ""),
                    ),
                    reason="dependency",
                ),
                msg_id=f"{KIND}/{md.get('namespace')}/{md.get('name')}@include-{source.name}-{ready.digest}",
            )
