"""A small real registry for what docker-registry cannot show: a bearer-token challenge (token
service on `/token`, Basic-authenticated as USER/PASSWORD), `Link` pagination, `"tags": null` and
`429 Too Many Requests` with `Retry-After`."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class FakeRegistry:
    url: str = ""
    tags: list[str] | None = field(default_factory=list)
    page_size: int = 2
    limited: int = 0
    retry_after: str = "7"
    hits: list[str] = field(default_factory=list)
    token_requests: list[str] = field(default_factory=list)
    header_names: set[str] = field(default_factory=set)
    manifest_accepts: list[str] = field(default_factory=list)
    """Every request header name the tag-list endpoint received."""
    realm: str | None = None
    """The token service named in the challenge (default: this server's /token)."""
    next_base: str = ""
    """Prefix of the `Link` to the next page (default: a path on this server)."""

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


USER, PASSWORD, TOKEN = "robot", "pa55", "tok-123"
IDENTITY_TOKEN = "refresh-456"
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, bytes]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, and that
    certificate's PEM (what a certSecretRef's `ca.crt` holds)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-test-registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / "tls.crt").write_bytes(cert_pem)
    (directory / "tls.key").write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return context, cert_pem


@contextlib.asynccontextmanager
async def fake_registry(tls: ssl.SSLContext | None = None) -> AsyncIterator[FakeRegistry]:
    """Serve a FakeRegistry on a free loopback port (HTTPS with `tls`) until the block ends."""
    state = FakeRegistry()

    async def token(request: web.Request) -> web.Response:
        state.token_requests.append(request.query.get("scope", ""))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        return web.json_response({"token": TOKEN, "expires_in": 300})

    async def tags(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        state.header_names.update(request.headers.keys())
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = (
                f'Bearer realm="{state.realm or state.url + "/token"}",service="fake",'
                f'scope="repository:{request.match_info["repo"]}:pull"'
            )
            return web.json_response(
                {"errors": []}, status=401, headers={"Www-Authenticate": challenge}
            )  # as Go spells it
        if state.limited > 0:
            state.limited -= 1
            return web.json_response(
                {"errors": [{"code": "TOOMANYREQUESTS"}]},
                status=429,
                headers={"Retry-After": state.retry_after},
            )
        if state.tags is None:
            return web.json_response({"name": request.match_info["repo"], "tags": None})
        last = request.query.get("last")
        start = state.tags.index(last) + 1 if last else 0
        page = state.tags[start : start + state.page_size]
        headers = {}
        if start + state.page_size < len(state.tags):
            headers["Link"] = (
                f'<{state.next_base}/v2/{request.match_info["repo"]}/tags/list?n={state.page_size}&last={page[-1]}>; rel="next"'
            )
        return web.json_response({"name": request.match_info["repo"], "tags": page}, headers=headers)

    async def refresh_token(request: web.Request) -> web.Response:
        """The OAuth2 refresh-token grant docker uses with an identity token."""
        form = await request.post()
        state.token_requests.append(str(form.get("scope", "")))
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != IDENTITY_TOKEN:
            return web.json_response({"error": "invalid_grant"}, status=401)
        return web.json_response({"access_token": TOKEN, "expires_in": 300})

    async def manifest(request: web.Request) -> web.Response:
        """A registry that gives no Docker-Content-Digest: the client must hash the manifest."""
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{state.url}/token",service="fake"'
            return web.Response(status=401, headers={"Www-Authenticate": challenge})
        state.manifest_accepts.append(request.headers.get("Accept", ""))
        body = MANIFEST if request.method == "GET" else b""
        return web.Response(body=body, content_type="application/vnd.oci.image.manifest.v1+json")

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_post("/token", refresh_token)
    app.router.add_get("/v2/{repo:.+}/tags/list", tags)
    app.router.add_route("*", "/v2/{repo:.+}/manifests/{reference}", manifest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()
