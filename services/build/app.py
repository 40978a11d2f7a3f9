"""The build service: renders Kustomizations when their source has a new artifact.

It owns no kind. It consumes `artifact.ready` (every Kustomization whose `sourceRef` names that
source is rendered) and `reconcile.request` for Kustomizations (the apply service's controller
publishes them on spec changes, intervals and requestedAt). Under a per-Kustomization lease the
object is read fresh and rendered at its source's newest announced artifact (falling back to
`status.artifact`), so racing triggers never publish an older state last. It publishes
`build.ready` with a stored bundle, or `build.failed` with Flux's reason and a message naming the
file and line. Rendering runs in a worker thread (libs.fluxbuild), so a big build never stalls
the event loop.

The bundle contract with apply is in docs/kustomization-build.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from libs.common import names
from libs.common.api import meta
from libs.common.api.kustomize.kustomization import Kustomization
from libs.common.app import App, ServiceSpec
from libs.common.artifacts import (
    DEFAULT_MAX_BYTES,
    ArchiveError,
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    artifact_app,
    fetch_artifact,
    gc,
    pack_files,
    safe_extract,
    store_artifact,
    store_from_url,
)
from libs.common.bus import Delivery, LockBusy, RetryLater
from libs.common.events import ArtifactReady, BuildFailed, BuildReady, ObjectRef, ReconcileRequest
from libs.common.events import subjects as subj
from libs.common.kube import KubeError
from libs.common.runtime.redact import sanitize_message
from libs.common.runtime.settings import Settings, parse_host_port
from libs.fluxbuild import (
    BuildSpec,
    FluxBuildError,
    Rendered,
    configmap_variables,
    render,
    secret_variables,
)

SERVICE = "build"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_API_VERSION = f"{SOURCE_GROUP}/v1"
SUPPORTED_SOURCE_KINDS = ("GitRepository", "OCIRepository", "Bucket")
BUNDLE_FILE = "manifests.yaml"
BUNDLES_KEPT = 2


class BuildSettings(Settings):
    service_name: str = Field("sluice-build", description="Name in logs, traces and metrics.")
    artifact_addr: str = Field(
        "0.0.0.0:9091",
        description=(
            "host:port where the rendered bundles are served over HTTP (BuildReady.url points here"
            " unless SLUICE_ARTIFACT_BASE_URL names another server of the same store)."
        ),
    )
    artifact_max_bytes: int = Field(
        DEFAULT_MAX_BYTES,
        gt=0,
        description="Largest source artifact (download and unpacked content), in bytes.",
    )
    strict_substitutions: bool = Field(
        True,
        description=(
            "Flux's StrictPostBuildSubstitutions gate: an undefined ${var} without a default fails the build."
        ),
    )
    source_retry_seconds: float = Field(
        30.0, gt=0, description="Delay before retrying when a source artifact cannot be downloaded."
    )

    @field_validator("artifact_addr")
    @classmethod
    def _check_artifact_addr(cls, value: str) -> str:
        parse_host_port(value)
        return value


@dataclass(frozen=True)
class SourceArtifact:
    revision: str
    digest: str
    url: str


def _ks_ref(raw: dict[str, Any]) -> ObjectRef:
    md = raw.get("metadata") or {}
    return ObjectRef(
        api_version=Kustomization.api_version(),
        kind=Kustomization.KIND,
        namespace=md.get("namespace") or "",
        name=md.get("name") or "",
        uid=md.get("uid"),
    )


def _source_ref(raw: dict[str, Any]) -> ObjectRef:
    ref = (raw.get("spec") or {}).get("sourceRef") or {}
    md = raw.get("metadata") or {}
    return ObjectRef(
        api_version=ref.get("apiVersion") or SOURCE_API_VERSION,
        kind=ref.get("kind") or "",
        namespace=ref.get("namespace") or md.get("namespace") or "",
        name=ref.get("name") or "",
    )


def _same_object(a: ObjectRef, b: ObjectRef) -> bool:
    return (a.kind, a.namespace, a.name) == (b.kind, b.namespace, b.name)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _advertised(url: str) -> str:
    """The served URL with a wildcard host replaced by this host's address, so others can reach it."""
    parts = urlsplit(url)
    if parts.hostname in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
        return urlunsplit((parts.scheme, f"{host}:{parts.port}", parts.path, "", ""))
    return url


class Builder:
    """Renders Kustomizations and publishes the outcome; one per service process."""

    def __init__(self, app: App, store: ArtifactStore, base_url: str) -> None:
        self.app = app
        self.store = store
        self.base_url = base_url
        self.settings: BuildSettings = app.settings
        self.log = app.runtime.log

    # --- triggers ---------------------------------------------------------------------------------

    async def on_artifact(self, event: ArtifactReady, delivery: Delivery) -> None:
        """Render every Kustomization whose sourceRef names the source of this artifact."""
        src = event.source
        items, _ = await self.app.kube.list_objects(
            Kustomization.api_version(), Kustomization.KIND, self.settings.watch_namespace or None
        )
        matching = [_ks_ref(raw) for raw in items if _same_object(_source_ref(raw), src)]
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def one(ks: ObjectRef) -> None:
            async with limit:
                await self.build(ks, force=None, trigger=src)
                await delivery.in_progress()

        outcomes = await asyncio.gather(*(one(ks) for ks in matching), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for error in errors:
            if not isinstance(error, LockBusy):
                raise error
        if errors:
            raise RetryLater("another replica is building one of these Kustomizations", 1.0)

    async def on_request(self, request: ReconcileRequest, delivery: Delivery) -> None:
        """Render one Kustomization at its source's newest artifact."""
        force = request.requested_at if request.reason == "requested" else None
        try:
            await self.build(request.object, force=force, trigger=None)
        except LockBusy:
            raise RetryLater("another replica is building this Kustomization", 1.0) from None

    # --- one build --------------------------------------------------------------------------------

    async def build(self, ks: ObjectRef, *, force: str | None, trigger: ObjectRef | None) -> None:
        """Render Kustomization `ks` and publish build.ready or build.failed (idempotent).

        Under the Kustomization's lease, the object is read fresh and rendered at its source's
        newest artifact, so two triggers racing never publish an older state last. `trigger` is
        the source of an artifact.ready: when the Kustomization no longer uses it, nothing is done.
        """
        lease = f"build/{Kustomization.KIND}/{ks.namespace}/{ks.name}"
        async with self.app.bus.lease(lease):
            raw = await self.app.kube.get(
                Kustomization.api_version(), Kustomization.KIND, ks.name, ks.namespace
            )
            if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
                return
            if bool((raw.get("spec") or {}).get("suspend")):
                return
            ref = _source_ref(raw)
            if trigger is not None and not _same_object(ref, trigger):
                return
            artifact = await self._source_artifact(raw, ref)
            if artifact is not None:
                await self._build_locked(raw, ref, artifact, force)

    async def _source_artifact(self, raw: dict[str, Any], ref: ObjectRef) -> SourceArtifact | None:
        """The source's newest artifact; publishes ArtifactFailed (and returns None) when there is none.

        Source announces an artifact (artifact.ready) before it records it in `status.artifact`,
        so the newest announcement on the stream wins over the status, which is the fallback.
        """
        shown = f"{ref.kind}/{ref.namespace}/{ref.name}"
        if ref.kind not in SUPPORTED_SOURCE_KINDS:
            message = f"source kind '{ref.kind}' is not supported"
            await self._failed(raw, ref, "", None, meta.ARTIFACT_FAILED, message)
            return None
        source = await self.app.kube.get(SOURCE_API_VERSION, ref.kind, ref.name, ref.namespace)
        if source is None:
            await self._failed(raw, ref, "", None, meta.ARTIFACT_FAILED, f"Source '{shown}' not found")
            return None
        subject = subj.subject(names.ARTIFACT_READY, ref.kind, ref.namespace, ref.name)
        announced = await self.app.bus.last(subject, ArtifactReady)
        if announced is not None:
            return SourceArtifact(announced.revision, announced.digest, announced.url)
        art = (source.get("status") or {}).get("artifact") or {}
        if not art.get("url") or not art.get("digest"):
            retry = f"{self.settings.source_retry_seconds:g}s"
            message = f"Source artifact not found, retrying in {retry}"
            await self._failed(raw, ref, "", None, meta.ARTIFACT_FAILED, message)
            return None
        return SourceArtifact(str(art.get("revision") or ""), str(art["digest"]), str(art["url"]))

    async def _build_locked(
        self, raw: dict[str, Any], ref: ObjectRef, artifact: SourceArtifact, force: str | None
    ) -> None:
        ks = _ks_ref(raw)
        generation = int((raw.get("metadata") or {}).get("generation") or 0)
        spec_raw: dict[str, Any] = raw.get("spec") or {}
        uses_cluster_vars = bool((spec_raw.get("postBuild") or {}).get("substituteFrom"))
        last_ready = await self._last_ready(ks)
        same_inputs = (
            last_ready is not None
            and last_ready.generation == generation
            and last_ready.revision == artifact.revision
            and last_ready.source_digest == artifact.digest
        )
        if same_inputs and force is None and not uses_cluster_vars and await self._ready_is_newest(ks):
            return  # already rendered these inputs; the bundle is the same
        log = self.log.bind(kind=ks.kind, namespace=ks.namespace, name=ks.name, revision=artifact.revision)
        try:
            spec = BuildSpec.from_spec(spec_raw, strict=self.settings.strict_substitutions)
        except FluxBuildError as exc:
            await self._failed(raw, ref, artifact.revision, artifact.digest, exc.reason, str(exc), force)
            return
        data = await self._download(raw, ref, artifact, force)
        if data is None:
            return
        sources, sensitive = await self._variables(raw, spec_raw, ref, artifact, force)
        if sources is None:
            return  # build.failed already published
        with tempfile.TemporaryDirectory(prefix="sluice-build-") as tmp:
            root = Path(tmp) / "source"
            try:
                await asyncio.to_thread(safe_extract, data, root, max_bytes=self.settings.artifact_max_bytes)
            except ArchiveError as exc:
                message = f"failed to extract the artifact of {ref.kind}/{ref.namespace}/{ref.name}: {exc}"
                await self._failed(
                    raw, ref, artifact.revision, artifact.digest, meta.ARTIFACT_FAILED, message, force
                )
                return
            try:
                rendered: Rendered = await asyncio.to_thread(
                    render, root, spec, sources=sources, sensitive=sensitive, in_place=True
                )
            except FluxBuildError as exc:
                log.info("build failed", extra={"reason": exc.reason})
                await self._failed(raw, ref, artifact.revision, artifact.digest, exc.reason, str(exc), force)
                return
        bundle = await asyncio.to_thread(pack_files, {BUNDLE_FILE: rendered.yaml.encode("utf-8")})
        stored = await store_artifact(
            self.store,
            kind=Kustomization.KIND,
            namespace=ks.namespace,
            name=ks.name,
            data=bundle,
            revision=artifact.revision,
            base_url=self.base_url,
            metadata={"sourceDigest": artifact.digest},
        )
        digest = stored.digest or ""
        if (
            same_inputs
            and force is None
            and last_ready is not None
            and last_ready.digest == digest
            and await self._ready_is_newest(ks)
        ):
            return  # re-rendered (variables from the cluster may have changed) but nothing did
        ready = BuildReady(
            kustomization=ks,
            source=ref,
            revision=artifact.revision,
            generation=generation,
            digest=digest,
            url=stored.url,
            object_count=rendered.object_count,
            source_digest=artifact.digest,
        )
        msg_id = self._msg_id(ks, generation, artifact.digest, force) + f"@{digest}"
        await self.app.bus.publish(ready, msg_id=msg_id)
        log.info("built", extra={"objects": rendered.object_count, "digest": digest})
        await gc(
            self.store,
            kind=Kustomization.KIND,
            namespace=ks.namespace,
            name=ks.name,
            keep=BUNDLES_KEPT,
            current=stored.path,
        )

    async def _download(
        self, raw: dict[str, Any], ref: ObjectRef, artifact: SourceArtifact, force: str | None
    ) -> bytes | None:
        try:
            return await fetch_artifact(
                artifact.url, artifact.digest, max_bytes=self.settings.artifact_max_bytes
            )
        except ArtifactNotFound:
            retry = f"{self.settings.source_retry_seconds:g}s"
            message = f"Source is not ready, artifact not found, retrying in {retry}"
            await self._failed(
                raw, ref, artifact.revision, artifact.digest, meta.ARTIFACT_FAILED, message, force
            )
            return None
        except ArtifactError as exc:
            message = f"failed to fetch the artifact of {ref.kind}/{ref.namespace}/{ref.name}: {exc}"
            await self._failed(
                raw, ref, artifact.revision, artifact.digest, meta.ARTIFACT_FAILED, message, force
            )
            if "attempts" in str(exc):  # the server did not answer: try again later
                raise RetryLater(
                    "source artifact server unreachable", self.settings.source_retry_seconds
                ) from None
            return None

    async def _variables(
        self,
        raw: dict[str, Any],
        spec_raw: dict[str, Any],
        ref: ObjectRef,
        artifact: SourceArtifact,
        force: str | None,
    ) -> tuple[list[dict[str, str]] | None, set[str]]:
        """The data of `postBuild.substituteFrom` in order; publishes BuildFailed for a missing one."""
        namespace = (raw.get("metadata") or {}).get("namespace") or ""
        sources: list[dict[str, str]] = []
        sensitive: set[str] = set()
        for item in (spec_raw.get("postBuild") or {}).get("substituteFrom") or []:
            kind, name = str(item.get("kind") or ""), str(item.get("name") or "")
            try:
                obj = (
                    await self.app.kube.get("v1", kind, name, namespace)
                    if kind in ("ConfigMap", "Secret")
                    else None
                )
            except KubeError as exc:
                if exc.code not in (401, 403):
                    raise  # transient: the bus retries with backoff
                message = f"substitute from '{kind}/{name}' error: {exc}"
                await self._failed(
                    raw, ref, artifact.revision, artifact.digest, meta.BUILD_FAILED, message, force
                )
                return None, sensitive
            if obj is None:
                if item.get("optional") and kind in ("ConfigMap", "Secret"):
                    continue
                plural = kind.lower() + "s"
                message = f"substitute from '{kind}/{name}' error: {plural} \"{name}\" not found"
                await self._failed(
                    raw, ref, artifact.revision, artifact.digest, meta.BUILD_FAILED, message, force
                )
                return None, sensitive
            try:
                values = secret_variables(obj) if kind == "Secret" else configmap_variables(obj)
            except FluxBuildError as exc:
                await self._failed(raw, ref, artifact.revision, artifact.digest, exc.reason, str(exc), force)
                return None, sensitive
            if kind == "Secret":
                sensitive.update(v for v in values.values() if v)
            sources.append(values)
        return sources, sensitive

    # --- publishing -------------------------------------------------------------------------------

    async def _last_ready(self, ks: ObjectRef) -> BuildReady | None:
        subject = subj.subject(names.BUILD_READY, ks.kind, ks.namespace, ks.name)
        return await self.app.bus.last(subject, BuildReady)

    async def _ready_is_newest(self, ks: ObjectRef) -> bool:
        """Whether the newest build.ready of `ks` is newer than its newest build.failed."""
        ready = await self.app.bus.last_entry(
            subj.subject(names.BUILD_READY, ks.kind, ks.namespace, ks.name), BuildReady
        )
        failed = await self.app.bus.last_entry(
            subj.subject(names.BUILD_FAILED, ks.kind, ks.namespace, ks.name), BuildFailed
        )
        return ready is not None and (failed is None or failed.seq < ready.seq)

    @staticmethod
    def _msg_id(ks: ObjectRef, generation: int, source_digest: str | None, force: str | None) -> str:
        msg_id = f"{ks.kind}/{ks.namespace}/{ks.name}@g{generation}@{source_digest or 'no-artifact'}"
        if force:
            msg_id += f"@r{_short_hash(force)}"
        return msg_id

    async def _failed(
        self,
        raw: dict[str, Any],
        ref: ObjectRef,
        revision: str,
        source_digest: str | None,
        reason: str,
        message: str,
        force: str | None = None,
    ) -> None:
        ks = _ks_ref(raw)
        generation = int((raw.get("metadata") or {}).get("generation") or 0)
        text = sanitize_message(message)
        failed = BuildFailed(
            kustomization=ks,
            source=ref,
            revision=revision,
            generation=generation,
            reason=reason,
            message=text,
            source_digest=source_digest,
        )
        msg_id = self._msg_id(ks, generation, source_digest, force) + f"@failed-{_short_hash(reason + text)}"
        await self.app.bus.publish(failed, msg_id=msg_id)
        log = self.log.bind(kind=ks.kind, namespace=ks.namespace, name=ks.name, revision=revision or None)
        log.info("build failed", extra={"reason": reason, "message": text})


async def setup(app: App) -> None:
    settings: BuildSettings = app.settings
    store = store_from_url(settings.artifact_store)
    try:
        served = await app.serve_http(artifact_app(store), settings.artifact_addr)
    except OSError as exc:
        # A busy port (a second `sluice up`, a Pushgateway on 9091) must not keep the service down:
        # serve on a free port instead; BuildReady.url always names the address actually served.
        host, port = parse_host_port(settings.artifact_addr)
        if port == 0:
            raise
        fallback = f"[{host}]:0" if ":" in host else f"{host}:0"
        app.runtime.log.warning(
            "bundle address busy, serving on a free port",
            extra={"addr": settings.artifact_addr, "error": str(exc)},
        )
        served = await app.serve_http(artifact_app(store), fallback)
    base_url = settings.artifact_base_url or _advertised(served)
    builder = Builder(app, store, base_url)
    app.runtime.log.info("serving build bundles", extra={"url": base_url})
    app.bus.subscribe(
        f"{SERVICE}-artifact-ready",
        subj.family_filter(names.ARTIFACT_READY),
        ArtifactReady,
        builder.on_artifact,
        concurrency=settings.concurrency,
        max_deliver=20,
    )
    app.bus.subscribe(
        f"{SERVICE}-reconcile-kustomization",
        subj.family_filter(names.RECONCILE_REQUEST, Kustomization.KIND),
        ReconcileRequest,
        builder.on_request,
        concurrency=settings.concurrency,
        max_deliver=20,
    )


SPEC = ServiceSpec(SERVICE, BuildSettings, setup=setup)
