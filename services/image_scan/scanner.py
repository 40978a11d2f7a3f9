"""ImageRepository and ImagePolicy reconcilers: scan registries, store tags, select the latest image.

ImageRepository, one run:
1. `check_spec`: unsupported fields stall with `UnsupportedField` (naming them); an invalid image
   stalls with `ImageURLInvalid`, an invalid exclusion regex with `InvalidExclusionList`.
2. `scan`: on a restart (`startup`) a repository scanned less than `interval` ago with the same
   image and exclusion list is not scanned again (as Flux, whose scan time survives restarts).
   Otherwise one tag-list request (credentials from `secretRef`, TLS from `certSecretRef`, plain
   HTTP with `insecure`), exclusions applied, and — only when the tags changed — the list stored
   at `imagerepository/<ns>/<name>/tags.json` in the artifact store and every ImagePolicy that
   refers to the repository asked to reconcile at once.
ImagePolicy, one run: the referenced repository (cross-namespace access checked against its
`accessFrom`), its stored tags, the policy (services.image_scan.policy), the digest when
`digestReflectionPolicy` asks for it, and `image.tag` published only when the result changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from libs.common.api import meta
from libs.common.api.duration import parse_duration
from libs.common.api.image.imagepolicy import ImagePolicy, ImageRef
from libs.common.api.image.imagerepository import ImageRepository, ScanResult
from libs.common.artifacts import ArtifactNotFound, ArtifactStore
from libs.common.bus import Bus
from libs.common.events import ImageTag, ObjectRef, ReconcileRequest
from libs.common.kube import Kube, secret_data
from libs.common.reconcile import Context, Reconciler, Result
from libs.common.runtime.redact import sanitize_message
from libs.registry import (
    AuthCache,
    AuthenticationError,
    Credentials,
    ImageName,
    RateLimited,
    RegistryClient,
    RegistryError,
    credentials_from_dockerconfig,
    parse_image,
)
from services.image_scan import policy

UNSUPPORTED_FIELD = "UnsupportedField"
IMAGE_URL_INVALID = "ImageURLInvalid"
INVALID_EXCLUSION_LIST = "InvalidExclusionList"
READ_OPERATION_FAILED = "ReadOperationFailed"
INVALID_POLICY = "InvalidPolicy"
ACCESS_DENIED = "AccessDenied"
FAILURE = "Failure"  # metav1.StatusFailure, Flux's reason for a policy that selects nothing
DOCKERCONFIG_KEY = ".dockerconfigjson"
LATEST_TAGS = 10
TAGS_FILE = "tags.json"


def tags_path(namespace: str, name: str) -> str:
    return f"imagerepository/{namespace}/{name}/{TAGS_FILE}"


def tags_revision(tags: list[str]) -> str:
    """A stable hash of a tag set (order-independent)."""
    text = "\n".join(sorted(set(tags)))
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def rate_limit_delay(retry_after: float, attempt: int, interval: float) -> float:
    """Seconds before scanning again after the `attempt`-th 429 in a row: the registry's
    `Retry-After` (at least 1 s), doubled on every further 429, never beyond `interval` unless the
    registry asked for longer."""
    base = max(retry_after, 1.0)
    grown: float = base * 2.0 ** min(attempt - 1, 20)
    return max(base, min(grown, interval))


def latest_tags(tags: list[str]) -> list[str]:
    """The first 10 tags in descending alphabetical order (Flux's `latestTags`)."""
    return sorted(tags, reverse=True)[:LATEST_TAGS]


def unsupported_fields(obj: ImageRepository) -> list[str]:
    spec = obj.spec
    found = []
    if spec.provider != "generic":
        found.append(f"spec.provider={spec.provider} (cloud auto-login; use secretRef)")
    return found


def _ssl_context(data: Mapping[str, bytes]) -> ssl.SSLContext:
    """A TLS context from a certSecretRef Secret: `ca.crt` (or `caFile`) and an optional client pair
    `tls.crt`/`tls.key` (or `certFile`/`keyFile`). Blocking (files): run in a thread."""
    ctx = ssl.create_default_context()
    ca = data.get("ca.crt") or data.get("caFile")
    if ca:
        ctx.load_verify_locations(cadata=ca.decode())
    cert = data.get("tls.crt") or data.get("certFile")
    key = data.get("tls.key") or data.get("keyFile")
    if cert and key:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for path, content in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class _Stop(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class StoredTags:
    revision: str
    canonical_image_name: str
    tags: list[str]


@dataclass
class TagStore:
    """Scanned tags per repository in the artifact store: every replica reads them, restarts keep them."""

    store: ArtifactStore

    async def put(self, namespace: str, name: str, stored: StoredTags) -> None:
        doc = {
            "revision": stored.revision,
            "canonicalImageName": stored.canonical_image_name,
            "tags": stored.tags,
        }
        await self.store.put(tags_path(namespace, name), json.dumps(doc, sort_keys=True).encode())

    async def get(self, namespace: str, name: str) -> StoredTags | None:
        try:
            raw = await self.store.get(tags_path(namespace, name))
        except ArtifactNotFound:
            return None
        doc = json.loads(raw)
        return StoredTags(str(doc["revision"]), str(doc.get("canonicalImageName", "")), list(doc["tags"]))

    async def delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(ArtifactNotFound):
            await self.store.delete(tags_path(namespace, name))


@dataclass
class ImageScanner:
    """The reconcilers of one running image-scan service and the state they share."""

    kube: Kube
    bus: Bus
    tags: TagStore
    auth_cache: AuthCache = field(default_factory=AuthCache)
    observe: Any = None
    """`(what, outcome)` per registry HTTP request (the requests metric)."""
    namespace: str | None = None
    """The namespace the service watches (None: all), where policies are looked for after a scan."""
    rate_limited: dict[str, int] = field(default_factory=dict)
    """Consecutive 429 answers per repository (`ns/name`), for the backoff."""

    # --- registry access ------------------------------------------------------------------------

    async def client(self, repo: ImageRepository, image: ImageName) -> RegistryClient:
        """A client for `repo` with its credentials and TLS settings; `_Stop` when a Secret is missing."""
        ns, spec = repo.namespace, repo.spec
        credentials: Credentials | None = None
        if spec.secret_ref is not None:
            data = await self._secret(ns, spec.secret_ref.name, "secretRef")
            raw = data.get(DOCKERCONFIG_KEY) or data.get(".dockercfg")
            if raw is None:
                raise _Stop(
                    Result.failed(
                        meta.AUTHENTICATION_FAILED,
                        f"secret '{ns}/{spec.secret_ref.name}' has no {DOCKERCONFIG_KEY} key",
                    )
                )
            try:
                credentials = credentials_from_dockerconfig(raw, image.host)
            except ValueError as exc:
                raise _Stop(Result.failed(meta.AUTHENTICATION_FAILED, str(exc))) from None
        if credentials is None and spec.service_account_name:
            credentials = await self._pull_secret_credentials(ns, spec.service_account_name, image)
        ssl_context: ssl.SSLContext | None = None
        if spec.cert_secret_ref is not None:
            data = await self._secret(ns, spec.cert_secret_ref.name, "certSecretRef")
            try:
                ssl_context = await asyncio.to_thread(_ssl_context, data)
            except (ssl.SSLError, ValueError, OSError) as exc:
                raise _Stop(
                    Result.failed(
                        meta.AUTHENTICATION_FAILED,
                        f"invalid TLS data in secret '{ns}/{spec.cert_secret_ref.name}': {type(exc).__name__}",
                    )
                ) from None
        proxy: tuple[str, str, str] | None = None
        if spec.proxy_secret_ref is not None:
            data = await self._secret(ns, spec.proxy_secret_ref.name, "proxySecretRef")
            address = data.get("address", b"").decode().strip()
            if not address:
                raise _Stop(
                    Result.failed(
                        meta.AUTHENTICATION_FAILED,
                        f"invalid proxy secret '{ns}/{spec.proxy_secret_ref.name}': key 'address' not found",
                    )
                )
            if urlsplit(address).scheme not in ("http", "https"):
                raise _Stop(
                    Result.stall(
                        UNSUPPORTED_FIELD,
                        "unsupported by Sluice's image-scan service: spec.proxySecretRef with a "
                        f"{urlsplit(address).scheme or 'scheme-less'} proxy address (http and https proxies only)",
                    )
                )
            proxy = (
                address,
                data.get("username", b"").decode(),
                data.get("password", b"").decode(),
            )
        return RegistryClient(
            image,
            proxy=proxy[0] if proxy else None,
            proxy_username=proxy[1] if proxy else "",
            proxy_password=proxy[2] if proxy else "",
            credentials=credentials,
            insecure=bool(spec.insecure),
            ssl_context=ssl_context,
            timeout=spec.timeout_seconds(),
            auth_cache=self.auth_cache,
            observe=self.observe,
        )

    async def _pull_secret_credentials(
        self, namespace: str, account: str, image: ImageName
    ) -> Credentials | None:
        """The first credentials for the image's host among the service account's imagePullSecrets."""
        sa = await self.kube.get("v1", "ServiceAccount", account, namespace)
        if sa is None:
            raise _Stop(
                Result.failed(
                    meta.AUTHENTICATION_FAILED,
                    f"failed to get serviceAccountName '{namespace}/{account}': service account not found",
                )
            )
        for ref in sa.get("imagePullSecrets") or []:
            name = str((ref or {}).get("name") or "")
            if not name:
                continue
            data = await self._secret(namespace, name, f"imagePullSecrets of service account '{account}'")
            raw = data.get(DOCKERCONFIG_KEY) or data.get(".dockercfg")
            if raw is None:
                continue
            try:
                found = credentials_from_dockerconfig(raw, image.host)
            except ValueError as exc:
                raise _Stop(
                    Result.failed(meta.AUTHENTICATION_FAILED, f"secret '{namespace}/{name}': {exc}")
                ) from None
            if found is not None:
                return found
        return None

    async def _secret(self, namespace: str, name: str, field_name: str) -> dict[str, bytes]:
        secret = await self.kube.get("v1", "Secret", name, namespace)
        if secret is None:
            raise _Stop(
                Result.failed(
                    meta.AUTHENTICATION_FAILED,
                    f"failed to get {field_name} secret '{namespace}/{name}': secret not found",
                )
            )
        return secret_data(secret)

    # --- ImageRepository ------------------------------------------------------------------------

    def repository_reconciler(self) -> Reconciler[ImageRepository]:
        return Reconciler(kind=ImageRepository, steps=[self.scan], finalize=[self.forget_tags])

    async def forget_tags(self, ctx: Context[ImageRepository]) -> Result | None:
        await self.tags.delete(ctx.obj.namespace, ctx.obj.name)
        self.rate_limited.pop(f"{ctx.obj.namespace}/{ctx.obj.name}", None)
        return None

    async def scan(self, ctx: Context[ImageRepository]) -> Result:
        try:
            return await self._scan(ctx)
        except _Stop as stop:
            return stop.result

    async def _scan(self, ctx: Context[ImageRepository]) -> Result:
        obj, status = ctx.obj, ctx.obj.status
        unsupported = unsupported_fields(obj)
        if unsupported:
            return Result.stall(
                UNSUPPORTED_FIELD, "unsupported by Sluice's image-scan service: " + ", ".join(unsupported)
            )
        try:
            image = parse_image(obj.spec.image)
        except ValueError as exc:
            return Result.stall(IMAGE_URL_INVALID, str(exc))
        exclusions: list[re.Pattern[str]] = []
        for expr in obj.spec.exclusion_list:
            try:
                exclusions.append(policy.compile_go_regexp(expr))
            except policy.InvalidPolicy as exc:
                return Result.stall(INVALID_EXCLUSION_LIST, f"failed to compile exclusion list: {exc}")
        previous = status.last_scan_result
        stored = await self.tags.get(obj.namespace, obj.name)
        if ctx.trigger == "startup" and self._fresh(obj, image, stored):
            ctx.unchanged = True
            assert previous is not None
            return Result.ready(f"successful scan: found {previous.tag_count} tags")
        status.canonical_image_name = image.canonical
        client = await self.client(obj, image)
        try:
            scanned = await client.list_tags()
        except RateLimited as exc:
            key = f"{obj.namespace}/{obj.name}"
            self.rate_limited[key] = attempt = self.rate_limited.get(key, 0) + 1
            delay = rate_limit_delay(exc.retry_after, attempt, parse_duration(obj.spec.interval))
            return Result.failed(READ_OPERATION_FAILED, f"{exc}; retrying in {delay:g}s", after=delay)
        except AuthenticationError as exc:
            return Result.failed(meta.AUTHENTICATION_FAILED, str(exc))
        except RegistryError as exc:
            return Result.failed(READ_OPERATION_FAILED, str(exc))
        self.rate_limited.pop(f"{obj.namespace}/{obj.name}", None)
        kept = [t for t in dict.fromkeys(scanned) if not any(rx.search(t) for rx in exclusions)]
        revision = tags_revision(kept)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status.last_scan_result = ScanResult(
            revision=revision, tag_count=len(kept), scan_time=now, latest_tags=latest_tags(kept) or None
        )
        status.observed_exclusion_list = list(obj.spec.exclusion_list)
        ctx.revision = revision
        message = f"successful scan: found {len(kept)} tags"
        changed = (
            stored is None
            or stored.revision != revision
            or stored.canonical_image_name != image.canonical
            or previous is None
            or previous.revision != revision
        )
        if not changed:
            ctx.unchanged = True
            return Result.ready(message)
        try:
            await self.tags.put(obj.namespace, obj.name, StoredTags(revision, image.canonical, kept))
            await self._trigger_policies(obj, revision, time.time_ns())
        except Exception as exc:
            # Not recorded as scanned, so the retry stores and notifies again.
            status.last_scan_result = previous
            return Result.failed(
                meta.RECONCILIATION_FAILED,
                sanitize_message(
                    f"storing the tags or notifying ImagePolicies failed: {type(exc).__name__}: {exc}"
                ),
            )
        ready = ctx.condition(meta.READY)
        if ready is not None and ready.status == meta.CONDITION_TRUE and ready.message == message:
            ctx.event(meta.SUCCEEDED, message)  # new tags, same count: still worth an event
        return Result.ready(message)

    def _fresh(self, obj: ImageRepository, image: ImageName, stored: StoredTags | None) -> bool:
        """Scanned before (tags still stored) with this image and exclusion list, less than an interval ago."""
        status = obj.status
        result = status.last_scan_result
        if result is None or stored is None or result.scan_time is None:
            return False
        if status.canonical_image_name != image.canonical or stored.revision != result.revision:
            return False
        if status.observed_exclusion_list != list(obj.spec.exclusion_list):
            return False
        try:
            scanned = (
                datetime.strptime(result.scan_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            )
        except ValueError:
            return False
        return time.time() - scanned < parse_duration(obj.spec.interval)

    async def _trigger_policies(self, repo: ImageRepository, revision: str, scan_id: int) -> None:
        """Ask every ImagePolicy that uses `repo` to reconcile now. The message id names the tag set
        and the scan, so tags that change back to an earlier set within the stream's de-duplication
        window still reach the policies."""
        items, _ = await self.kube.list_objects(ImagePolicy.api_version(), ImagePolicy.KIND, self.namespace)
        for raw in items:
            md = raw.get("metadata") or {}
            ref = (raw.get("spec") or {}).get("imageRepositoryRef") or {}
            ns = md.get("namespace", "")
            if ref.get("name") != repo.name or (ref.get("namespace") or ns) != repo.namespace:
                continue
            request = ReconcileRequest(
                object=ObjectRef(
                    api_version=ImagePolicy.api_version(),
                    kind=ImagePolicy.KIND,
                    namespace=ns,
                    name=md["name"],
                ),
                reason="changed",
            )
            await self.bus.publish(
                request, msg_id=f"{ImagePolicy.KIND}/{ns}/{md['name']}@scan-{revision}@{scan_id}"
            )

    # --- ImagePolicy ----------------------------------------------------------------------------

    def policy_reconciler(self) -> Reconciler[ImagePolicy]:
        return Reconciler(kind=ImagePolicy, steps=[self.select])

    async def select(self, ctx: Context[ImagePolicy]) -> Result:
        status = ctx.obj.status
        before = status.latest_ref
        try:
            return await self._select(ctx, before)
        except _Stop as stop:
            status.clear_previous()
            return stop.result

    async def _repository(self, obj: ImagePolicy) -> ImageRepository:
        ref = obj.spec.image_repository_ref
        ns = ref.namespace or obj.namespace
        raw = await self.kube.get(ImageRepository.api_version(), ImageRepository.KIND, ref.name, ns)
        if raw is None:
            raise _Stop(
                Result.failed(
                    meta.DEPENDENCY_NOT_READY,
                    f"failed to get the referred ImageRepository: referenced ImageRepository does not exist: "
                    f'imagerepositories.image.toolkit.fluxcd.io "{ref.name}" not found',
                )
            )
        repo = ImageRepository.model_validate(raw)
        if ns != obj.namespace and not await self._allowed(repo, obj.namespace):
            raise _Stop(
                Result.failed(
                    ACCESS_DENIED,
                    f"failed to get the referred ImageRepository: access denied: cross-namespace reference "
                    f"from '{obj.namespace}' to ImageRepository '{ns}/{ref.name}' is not allowed by its accessFrom",
                )
            )
        return repo

    async def _allowed(self, repo: ImageRepository, namespace: str) -> bool:
        access = repo.spec.access_from
        if access is None:
            return False
        raw = await self.kube.get("v1", "Namespace", namespace)
        labels: dict[str, str] = ((raw or {}).get("metadata") or {}).get("labels") or {}
        for selector in access.namespace_selectors:
            wanted = selector.match_labels or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                return True
        return False

    async def _select(self, ctx: Context[ImagePolicy], before: ImageRef | None) -> Result:
        obj, status = ctx.obj, ctx.obj.status
        try:
            policy.check_policy(obj.spec.policy)
            if obj.spec.filter_tags is not None and obj.spec.filter_tags.pattern:
                policy.compile_go_regexp(obj.spec.filter_tags.pattern)
        except policy.InvalidPolicy as exc:
            status.clear_previous()
            return Result.stall(INVALID_POLICY, str(exc))
        repo = await self._repository(obj)
        # The stored tags, not the repository's status, are the truth: a scan triggers its policies
        # before its own status is written.
        stored = await self.tags.get(repo.namespace, repo.name)
        if stored is None and repo.status.last_scan_result is None:
            return Result.progressing(
                "referenced ImageRepository has not been scanned yet", reason=meta.DEPENDENCY_NOT_READY
            )
        if stored is None or not stored.tags:
            raise _Stop(Result.failed(meta.DEPENDENCY_NOT_READY, "no tags in database"))
        try:
            tag = policy.latest(stored.tags, obj.spec.policy, obj.spec.filter_tags)
        except policy.NoLatest as exc:
            raise _Stop(Result.failed(FAILURE, str(exc))) from None
        ref = ImageRef(name=repo.spec.image, tag=tag)
        ref.digest = await self._digest(obj, repo, tag, before)
        if before is not None and before == ref:
            ready = ctx.condition(meta.READY)
            ctx.unchanged = ready is not None and ready.status == meta.CONDITION_TRUE
            return Result.ready(f"Latest image tag for '{repo.spec.image}' resolved to {tag}")
        status.record_latest(ref)
        await self.bus.publish(
            ImageTag(
                policy=ObjectRef(
                    api_version=ImagePolicy.api_version(),
                    kind=ImagePolicy.KIND,
                    namespace=obj.namespace,
                    name=obj.name,
                    uid=obj.metadata.uid,
                ),
                image=ref.name,
                tag=ref.tag,
                digest=ref.digest,
                previous_tag=before.tag if before is not None else None,
            ),
            # Tag and digest, plus the policy's resourceVersion: a retry after a failed status write
            # (same version) is de-duplicated, a later change back to this image is not.
            msg_id=(
                f"{ImagePolicy.KIND}/{obj.namespace}/{obj.name}@{ref.tag}@{ref.digest or ''}"
                f"@rv{obj.metadata.resource_version or ''}"
            ),
        )
        ctx.revision = str(ref)
        if before is not None and before.tag != tag:
            return Result.ready(
                f"Latest image tag for '{repo.spec.image}' updated from {before.tag} to {tag}"
            )
        return Result.ready(f"Latest image tag for '{repo.spec.image}' resolved to {tag}")

    async def _digest(
        self, obj: ImagePolicy, repo: ImageRepository, tag: str, before: ImageRef | None
    ) -> str | None:
        reflect = obj.spec.digest_reflection_policy
        if reflect == "Never":
            return None
        if (
            reflect == "IfNotPresent"
            and before is not None
            and before.digest
            and before.name == repo.spec.image
            and before.tag == tag
        ):
            return before.digest
        try:
            image = parse_image(repo.spec.image)
        except ValueError as exc:
            raise _Stop(Result.failed(FAILURE, str(exc))) from None
        client = await self.client(repo, image)
        try:
            return await client.digest(tag)
        except RateLimited as exc:
            raise _Stop(
                Result.failed(
                    FAILURE,
                    f"failed fetching digest of {repo.spec.image}:{tag}: {exc}",
                    after=max(exc.retry_after, 1.0),
                )
            ) from None
        except RegistryError as exc:
            raise _Stop(
                Result.failed(
                    FAILURE, sanitize_message(f"failed fetching digest of {repo.spec.image}:{tag}: {exc}")
                )
            ) from None
