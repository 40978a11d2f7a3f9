"""The artifact HTTP server and fetch_artifact, over real loopback HTTP."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from libs.common.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    LocalStore,
    S3Store,
    add_artifact_routes,
    artifact_app,
    digest_of,
    fetch_artifact,
    pack_files,
    safe_extract,
    store_artifact,
)
from libs.devservers.s3 import MotoS3Server

pytestmark = pytest.mark.integration

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start applications on free loopback ports; every one is cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


async def put_artifact(
    store: ArtifactStore, base_url: str, files: dict[str, bytes]
) -> tuple[str, str, bytes]:
    data = pack_files(files)
    artifact = await store_artifact(
        store,
        kind="GitRepository",
        namespace="flux-system",
        name="app",
        data=data,
        revision="main@sha1:1",
        base_url=base_url,
    )
    assert artifact.digest is not None
    return artifact.url, artifact.digest, data


async def test_served_artifact_is_fetched_verified_and_extracted(
    serve: Serve, store: LocalStore, tmp_path: Path
) -> None:
    base = await serve(artifact_app(store))
    url, digest, data = await put_artifact(store, base, {"deploy/app.yaml": b"kind: Deployment\n"})

    fetched = await fetch_artifact(url, digest)
    assert fetched == data
    safe_extract(fetched, tmp_path / "out")
    assert (tmp_path / "out" / "deploy" / "app.yaml").read_text() == "kind: Deployment\n"


async def test_get_and_head_headers(serve: Serve, store: LocalStore) -> None:
    base = await serve(artifact_app(store))
    url, digest, data = await put_artifact(store, base, {"a.yaml": b"a: 1\n"})
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/gzip"
            assert response.headers["Content-Length"] == str(len(data))
            assert response.headers["ETag"] == f'"{digest}"'
            assert "Content-Encoding" not in response.headers
            assert await response.read() == data
        async with session.head(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/gzip"
            assert response.headers["Content-Length"] == str(len(data))
            assert response.headers["ETag"] == f'"{digest}"'
            assert "Last-Modified" in response.headers
            assert await response.read() == b""
        async with session.get(url, headers={"If-None-Match": f'"{digest}"'}) as response:
            assert response.status == 304


async def test_missing_artifact_is_a_plain_404(serve: Serve, store: LocalStore) -> None:
    base = await serve(artifact_app(store))
    missing = f"{base}/gitrepository/flux-system/app/{'0' * 64}.tar.gz"
    async with aiohttp.ClientSession() as session:
        async with session.get(missing) as response:
            assert response.status == 404
            assert response.content_type == "text/plain"
            assert "artifact not found: gitrepository/flux-system/app/" in await response.text()
        async with session.head(missing) as response:
            assert response.status == 404
        # An encoded traversal that survives URL normalisation is refused like a missing file.
        traversal = URL(f"{base}/gitrepository/%2E%2E/%2E%2E/etc/passwd", encoded=True)
        async with session.get(traversal) as response:
            assert response.status == 404
    with pytest.raises(ArtifactNotFound, match=r"artifact not found: http://127\.0\.0\.1"):
        await fetch_artifact(missing, "sha256:" + "0" * 64, retries=0)


async def test_digest_mismatch_names_url_and_both_digests(serve: Serve, store: LocalStore) -> None:
    base = await serve(artifact_app(store))
    url, digest, _ = await put_artifact(store, base, {"a.yaml": b"a"})
    wrong = digest_of(b"something else")
    with pytest.raises(ArtifactError) as err:
        await fetch_artifact(url + "?token=hunter2", wrong)
    message = str(err.value)
    assert url in message
    assert wrong in message
    assert digest in message
    assert "hunter2" not in message


async def test_download_aborts_past_max_bytes(serve: Serve, store: LocalStore) -> None:
    base = await serve(artifact_app(store))
    url, digest, data = await put_artifact(store, base, {"big.bin": bytes(range(256)) * 4096})
    with pytest.raises(ArtifactError, match=f"more than the limit of {len(data) - 1}"):
        await fetch_artifact(url, digest, max_bytes=len(data) - 1)


async def test_download_aborts_past_max_bytes_without_content_length(serve: Serve) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/a/b.tar.gz", chunked)
    base = await serve(app)
    with pytest.raises(ArtifactError, match="exceeds the limit of 10000 bytes; download aborted"):
        await fetch_artifact(f"{base}/a/b.tar.gz", digest_of(b""), max_bytes=10_000)


async def test_retries_server_errors_with_backoff(serve: Serve) -> None:
    payload = b"eventually"
    requests = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        if requests <= 2:
            return web.Response(status=503, text="busy")
        return web.Response(body=payload)

    app = web.Application()
    app.router.add_get("/a/b.tar.gz", flaky)
    base = await serve(app)
    assert await fetch_artifact(f"{base}/a/b.tar.gz", digest_of(payload), retries=3) == payload
    assert requests == 3

    requests = -100  # always failing from now on
    with pytest.raises(ArtifactError, match=r"failed after 2 attempts: HTTP 503"):
        await fetch_artifact(f"{base}/a/b.tar.gz", digest_of(payload), retries=1)


async def test_connection_refused_is_retried_then_reported() -> None:
    # A port nobody listens on: bind one, close it, use it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ArtifactError, match=r"failed after 2 attempts: ClientConnectorError") as err:
        await fetch_artifact(f"http://user:pw-secret@127.0.0.1:{port}/a/b.tar.gz", digest_of(b""), retries=1)
    assert f"http://127.0.0.1:{port}/a/b.tar.gz" in str(err.value)
    assert "pw-secret" not in str(err.value)


async def test_routes_added_to_a_service_app_do_not_shadow_its_own(serve: Serve, store: LocalStore) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="metrics")

    app = web.Application()
    add_artifact_routes(app, store)
    app.router.add_get("/metrics", metrics)
    prefixed = web.Application()
    add_artifact_routes(prefixed, store, prefix="/artifacts/")
    base = await serve(app)
    prefixed_base = await serve(prefixed)

    url, digest, data = await put_artifact(store, base, {"x": b"x"})
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        assert await response.text() == "metrics"
    assert await fetch_artifact(url, digest) == data
    assert await fetch_artifact(url.replace(base, prefixed_base + "/artifacts"), digest) == data


async def test_served_from_s3(serve: Serve, s3_server: MotoS3Server) -> None:
    store = S3Store(
        "sluice-serve-test",
        s3_server.endpoint_url,
        s3_server.access_key,
        s3_server.secret_key,
        create_bucket=True,
    )
    sub = web.Application()
    sub.add_subapp("/storage", artifact_app(store))
    base = await serve(sub)
    url, digest, data = await put_artifact(store, base + "/storage", {"chart/values.yaml": b"replicas: 2\n"})
    assert await fetch_artifact(url, digest) == data
    async with aiohttp.ClientSession() as session, session.head(url) as response:
        assert response.headers["ETag"] == f'"{digest}"'
        assert response.headers["Content-Length"] == str(len(data))
