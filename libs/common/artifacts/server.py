"""Serving artifacts over HTTP, as source-controller does, and downloading them with verification.

Server: :func:`artifact_app` is a standalone aiohttp application; :func:`add_artifact_routes`
mounts the same handler on a service's own application (next to ``/metrics`` and the probes —
the route only matches paths with at least two segments, ``<kind>/<namespace>/<name>/<file>``, so
it never shadows them). ``GET`` and ``HEAD`` answer with ``Content-Type`` (``application/gzip`` for
tarballs), ``Content-Length`` and, when the digest is known, ``ETag: "sha256:<hex>"``; a missing
artifact is a plain-text 404.

Client: :func:`fetch_artifact` downloads with retries (connection errors, timeouts, 5xx and 429,
with exponential backoff), aborts past ``max_bytes`` and checks the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Final

from aiohttp import ClientConnectionError, ClientPayloadError, ClientSession, ClientTimeout, web

from libs.common.artifacts.archive import DEFAULT_MAX_BYTES, digest_of
from libs.common.artifacts.errors import ArtifactError, ArtifactNotFound, InvalidArtifactPath
from libs.common.artifacts.objects import ArtifactStore, clean_path, content_type_for, display_url

__all__ = ["ARTIFACT_STORE_KEY", "add_artifact_routes", "artifact_app", "fetch_artifact"]

log = logging.getLogger(__name__)

ARTIFACT_STORE_KEY: Final = web.AppKey("artifact_store", ArtifactStore)
# At least two segments: artifacts live at <kind>/<namespace>/<name>/<file>.
_ROUTE_PATH: Final = "/{path:[^/]+/.+}"
_CHUNK: Final = 64 * 1024
_BACKOFF_BASE: Final = 0.2
_BACKOFF_MAX: Final = 5.0
_SUPPORTED_DIGESTS: Final = frozenset({"sha256", "sha384", "sha512"})


# --- server ----------------------------------------------------------------------------------------


def artifact_app(store: ArtifactStore) -> web.Application:
    """An aiohttp application serving ``GET``/``HEAD /<path>`` from ``store``.

    Run it on its own (``web.AppRunner``) or mount it: ``app.add_subapp("/artifacts", artifact_app(s))``.
    """
    app = web.Application()
    app[ARTIFACT_STORE_KEY] = store
    add_artifact_routes(app, store)
    return app


def add_artifact_routes(app: web.Application, store: ArtifactStore, prefix: str = "") -> None:
    """Serve ``store`` under ``<prefix>/<path>`` on an existing application."""
    handler = _ArtifactHandler(store)
    app.router.add_get(prefix.rstrip("/") + _ROUTE_PATH, handler.handle, allow_head=True)


class _ArtifactHandler:
    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            path = clean_path(request.match_info["path"])
        except InvalidArtifactPath:
            return _not_found(request.match_info["path"])
        try:
            if request.method == "HEAD":
                return await self._head(request, path)
            return await self._get(request, path)
        except ArtifactNotFound:
            return _not_found(path)
        except ArtifactError as exc:
            log.warning("serving artifact %s failed: %s", path, exc)
            return web.Response(status=502, text=f"artifact storage error for {path}\n")

    async def _get(self, request: web.Request, path: str) -> web.StreamResponse:
        data = await self._store.get(path)
        digest = await asyncio.to_thread(digest_of, data)
        headers = {"ETag": _etag(digest)}
        if _matches(request, digest):
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, content_type=content_type_for(path), headers=headers)

    async def _head(self, request: web.Request, path: str) -> web.StreamResponse:
        stored = await self._store.stat(path)
        headers = {"Content-Type": content_type_for(path)}
        if stored.digest:
            headers["ETag"] = _etag(stored.digest)
            if _matches(request, stored.digest):
                return web.Response(status=304, headers=headers)
        # No body, but the length a GET would return: a StreamResponse lets us announce it.
        response = web.StreamResponse(headers=headers)
        response.content_length = stored.size
        if stored.last_modified is not None:
            response.last_modified = stored.last_modified
        await response.prepare(request)
        await response.write_eof()
        return response


def _etag(digest: str) -> str:
    return f'"{digest}"'


def _matches(request: web.Request, digest: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (_etag(digest), "*") for tag in wanted.split(",") if tag.strip())


def _not_found(path: str) -> web.Response:
    return web.Response(status=404, text=f"artifact not found: {path}\n")


# --- client ----------------------------------------------------------------------------------------


class _Retryable(Exception):
    """A failure worth another attempt: the connection broke, timed out, or the server had a 5xx."""


async def fetch_artifact(
    url: str,
    expected_digest: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int = 3,
    timeout: float = 30,
    session: ClientSession | None = None,
) -> bytes:
    """Download the artifact at ``url`` and return its bytes once they match ``expected_digest``.

    Connection errors, timeouts (``timeout`` seconds per attempt), HTTP 5xx and 429 are retried up
    to ``retries`` times with exponential backoff. A 404 raises :class:`ArtifactNotFound`; another
    status, a body larger than ``max_bytes`` (the download stops there) or a digest mismatch raise
    :class:`ArtifactError`. Messages show the URL without credentials or query string.
    """
    algorithm, _, expected_hex = expected_digest.partition(":")
    if algorithm not in _SUPPORTED_DIGESTS or not expected_hex:
        raise ArtifactError(f"unsupported artifact digest {expected_digest!r}")
    shown = display_url(url)
    own_session = session is None
    client = session if session is not None else ClientSession(auto_decompress=False)
    try:
        attempt = 0
        while True:
            try:
                data = await _download(client, url, shown, max_bytes=max_bytes, timeout=timeout)
                break
            except _Retryable as exc:
                if attempt >= retries:
                    raise ArtifactError(
                        f"fetching {shown} failed after {attempt + 1} attempts: {exc}"
                    ) from None
                delay = min(_BACKOFF_BASE * 2**attempt, _BACKOFF_MAX)
                log.info("fetching %s failed (%s), retrying in %.1fs", shown, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
    finally:
        if own_session:
            await client.close()
    actual_hex = await asyncio.to_thread(_hexdigest, algorithm, data)
    if actual_hex != expected_hex.lower():
        raise ArtifactError(
            f"artifact {shown} has digest {algorithm}:{actual_hex}, expected {expected_digest}"
        )
    return data


async def _download(client: ClientSession, url: str, shown: str, *, max_bytes: int, timeout: float) -> bytes:
    try:
        async with client.get(
            url, timeout=ClientTimeout(total=timeout), headers={"Accept-Encoding": "identity"}
        ) as response:
            if response.status == 404:
                raise ArtifactNotFound(shown)
            if response.status >= 500 or response.status == 429:
                raise _Retryable(f"HTTP {response.status}")
            if response.status != 200:
                raise ArtifactError(f"fetching {shown}: HTTP {response.status}")
            length = response.content_length
            if length is not None and length > max_bytes:
                raise ArtifactError(f"artifact {shown} is {length} bytes, more than the limit of {max_bytes}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise ArtifactError(
                        f"artifact {shown} exceeds the limit of {max_bytes} bytes; download aborted"
                    )
            return bytes(body)
    except (ClientConnectionError, ClientPayloadError) as exc:
        raise _Retryable(f"{type(exc).__name__}: {_without_url(str(exc), url, shown)}") from None
    except TimeoutError:
        raise _Retryable(f"no complete answer within {timeout:g}s") from None


def _without_url(message: str, url: str, shown: str) -> str:
    return message.replace(url, shown)


def _hexdigest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()
