"""Content-addressed artifacts of Flux objects in an :class:`ArtifactStore`, their retention, and the
choice of a store from a URL.

An artifact of ``GitRepository flux-system/podinfo`` whose tarball has digest ``sha256:<hex>`` lives
at ``gitrepository/flux-system/podinfo/<hex>.tar.gz`` and is served at ``<base_url>/<path>``, as
Flux's source-controller lays out its storage. Storing the same content twice writes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from libs.common.api.meta import Artifact
from libs.common.artifacts.archive import digest_of
from libs.common.artifacts.errors import ArtifactNotFound, InvalidArtifactPath, InvalidStoreURL
from libs.common.artifacts.local import LocalStore
from libs.common.artifacts.objects import ArtifactStore, StoredObject, clean_path, display_url
from libs.common.artifacts.s3 import S3Store

__all__ = [
    "ArtifactStore",
    "LocalStore",
    "S3Store",
    "StoredObject",
    "artifact_dir",
    "artifact_path",
    "artifact_url",
    "gc",
    "rfc3339",
    "store_artifact",
    "store_from_url",
]

ARTIFACT_SUFFIX = ".tar.gz"
DEFAULT_RETENTION = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_S3_PARAMETERS = frozenset({"endpoint", "region", "create"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def artifact_dir(kind: str, namespace: str, name: str) -> str:
    """``<kind-lowercase>/<namespace>/<name>/``: where every artifact of one object lives."""
    segments = (("kind", kind.lower()), ("namespace", namespace), ("name", name))
    for label, value in segments:
        if not value or value in (".", "..") or "/" in value or "\x00" in value:
            raise InvalidArtifactPath(f"invalid {label} {value!r} for an artifact path")
    return "/".join(value for _, value in segments) + "/"


def artifact_path(kind: str, namespace: str, name: str, digest: str) -> str:
    """The content-addressed path of an artifact: ``<kind>/<namespace>/<name>/<hex>.tar.gz``."""
    _, _, hex_digest = digest.partition(":")
    if not hex_digest:
        raise InvalidArtifactPath(f"invalid digest {digest!r}")
    return f"{artifact_dir(kind, namespace, name)}{hex_digest}{ARTIFACT_SUFFIX}"


def artifact_url(base_url: str, path: str) -> str:
    """``<base_url>/<path>``, the address an artifact is served at."""
    return f"{base_url.rstrip('/')}/{quote(clean_path(path), safe='/')}"


def rfc3339(moment: datetime) -> str:
    """``moment`` as Kubernetes writes times: UTC, seconds precision, ``Z`` suffix."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def store_artifact(
    store: ArtifactStore,
    *,
    kind: str,
    namespace: str,
    name: str,
    data: bytes,
    revision: str,
    base_url: str,
    metadata: Mapping[str, str] | None = None,
) -> Artifact:
    """Store the tarball ``data`` of an object under its digest and describe it as Flux does.

    When an object with that digest and size is already stored it is left untouched and the
    returned ``lastUpdateTime`` is the time it was first stored.
    """
    digest = await asyncio.to_thread(digest_of, data)
    path = artifact_path(kind, namespace, name, digest)
    stored: StoredObject | None
    try:
        stored = await store.stat(path)
    except ArtifactNotFound:
        stored = None
    if stored is None or stored.size != len(data) or stored.digest not in (None, digest):
        stored = await store.put(path, data)
    return Artifact(
        path=path,
        url=artifact_url(base_url, path),
        revision=revision,
        digest=digest,
        last_update_time=rfc3339(stored.last_modified or datetime.now(UTC)),
        size=len(data),
        metadata=dict(metadata) if metadata else None,
    )


async def gc(
    store: ArtifactStore,
    *,
    kind: str,
    namespace: str,
    name: str,
    keep: int = DEFAULT_RETENTION,
    current: str | None = None,
) -> list[str]:
    """Delete all but the ``keep`` most recently stored artifacts of one object (Flux's retention).

    ``current`` is the path of the artifact in the object's status; it is never deleted, even when
    older than the ones kept. Objects in subdirectories of the object's directory are not touched.
    Returns the deleted paths.
    """
    directory = artifact_dir(kind, namespace, name)
    protected = clean_path(current) if current else None
    candidates = [obj for obj in await store.list(directory) if "/" not in obj.path[len(directory) :]]
    candidates.sort(key=lambda obj: (obj.last_modified or _EPOCH, obj.path), reverse=True)
    kept = {obj.path for obj in candidates[: max(keep, 0)]}
    deleted: list[str] = []
    for obj in candidates:
        if obj.path in kept or obj.path == protected:
            continue
        await store.delete(obj.path)
        deleted.append(obj.path)
    return deleted


def store_from_url(
    url: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ArtifactStore:
    """The store a URL names.

    - ``file:///abs/dir`` or a plain path: a :class:`LocalStore` in that directory.
    - ``s3://bucket?endpoint=http://host:port&region=eu-west-1&create=true``: an :class:`S3Store`.
      Credentials come from ``access_key``/``secret_key`` or else ``AWS_ACCESS_KEY_ID``/
      ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``); with neither, boto3's default chain.
      The region defaults to ``AWS_REGION``/``AWS_DEFAULT_REGION``, then ``us-east-1``.
    """
    env = os.environ if environ is None else environ
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidStoreURL("artifact store URL does not parse") from None
    scheme = parts.scheme.lower()
    if scheme == "s3":
        return _s3_store(url, access_key=access_key, secret_key=secret_key, env=env)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidStoreURL(f"file store URL {display_url(url)!r} must not name a host")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidStoreURL(f"file store URL {display_url(url)!r} needs an absolute path")
        return LocalStore(Path(path))
    if scheme == "" and url:
        return LocalStore(Path(url).absolute())
    raise InvalidStoreURL(f"unsupported artifact store URL {display_url(url)!r} (use file:// or s3://)")


def _s3_store(
    url: str,
    *,
    access_key: str | None,
    secret_key: str | None,
    env: Mapping[str, str],
) -> S3Store:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise InvalidStoreURL(
            "S3 store URL must not carry credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    bucket = parts.hostname or ""
    if not bucket or parts.port is not None:
        raise InvalidStoreURL(f"S3 store URL {display_url(url)!r} must be s3://<bucket>")
    if parts.path not in ("", "/"):
        raise InvalidStoreURL(f"S3 store URL {display_url(url)!r}: key prefixes are not supported")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _S3_PARAMETERS:
            raise InvalidStoreURL(
                f"unknown parameter {key!r} in S3 store URL (known: {', '.join(sorted(_S3_PARAMETERS))})"
            )
        params[key] = value
    create = params.get("create", "").lower()
    if create not in _TRUE | _FALSE:
        raise InvalidStoreURL("S3 store URL parameter 'create' must be true or false")
    endpoint = params.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise InvalidStoreURL("S3 store URL parameter 'endpoint' must be an http:// or https:// URL")
    region = params.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return S3Store(
        bucket,
        endpoint_url=endpoint,
        access_key=access_key if access_key is not None else env.get("AWS_ACCESS_KEY_ID"),
        secret_key=secret_key if secret_key is not None else env.get("AWS_SECRET_ACCESS_KEY"),
        region=region,
        create_bucket=create in _TRUE,
        session_token=env.get("AWS_SESSION_TOKEN") if access_key is None else None,
    )
