"""The OCI distribution client against a real docker-registry (anonymous and htpasswd) and, for what
that registry cannot show (bearer-token challenge, Link pagination, null tag lists, 429), a small
real aiohttp registry on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.devservers.registry import DockerRegistry, push_image
from libs.registry import (
    AuthCache,
    AuthenticationError,
    Credentials,
    RateLimited,
    RegistryClient,
    RegistryError,
    parse_image,
)
from tests.harness.registry_fixtures import AuthRegistry
from tests.registry.fake_registry import (
    IDENTITY_TOKEN,
    MANIFEST,
    PASSWORD,
    USER,
    FakeRegistry,
    fake_registry,
    self_signed_tls,
)
from tests.registry.http_proxy import http_proxy

pytestmark = pytest.mark.integration


# --- the real docker-registry -------------------------------------------------------------------


def _client(host: str, repository: str, **kwargs: object) -> RegistryClient:
    return RegistryClient(parse_image(f"{host}/{repository}"), insecure=True, timeout=10.0, **kwargs)  # type: ignore[arg-type]


async def test_docker_registry_tags_and_digest(registry: DockerRegistry) -> None:
    digests = {}
    for tag in ("1.0.0", "1.1.0", "latest"):
        digests[tag] = await asyncio.to_thread(push_image, registry.url, "client/anon", tag)
    client = _client(registry.host, "client/anon")
    assert sorted(await client.list_tags()) == ["1.0.0", "1.1.0", "latest"]
    assert await client.digest("1.1.0") == digests["1.1.0"]
    with pytest.raises(RegistryError, match="not found"):
        await _client(registry.host, "client/missing").list_tags()


async def test_docker_registry_basic_auth(registry_auth: AuthRegistry) -> None:
    await asyncio.to_thread(
        push_image,
        registry_auth.url,
        "client/private",
        "2.0.0",
        username=registry_auth.username,
        password=registry_auth.password,
    )
    requests: list[tuple[str, str]] = []
    cache = AuthCache()
    client = _client(
        registry_auth.host,
        "client/private",
        credentials=Credentials(registry_auth.username, registry_auth.password),
        auth_cache=cache,
        observe=lambda what, outcome: requests.append((what, outcome)),
    )
    assert await client.list_tags() == ["2.0.0"]
    assert requests == [("tags", "401"), ("tags", "200")]
    requests.clear()
    assert await client.list_tags() == ["2.0.0"]
    assert requests == [("tags", "200")]  # the scheme is remembered: one request
    with pytest.raises(AuthenticationError) as err:
        await _client(
            registry_auth.host, "client/private", credentials=Credentials("sluice", "wrong")
        ).list_tags()
    assert "wrong" not in str(err.value)
    with pytest.raises(AuthenticationError):
        await _client(registry_auth.host, "client/private").list_tags()


# --- a bearer-token registry that pages, answers null and rate-limits ---------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeRegistry]:
    async with fake_registry() as state:
        yield state


async def test_bearer_challenge_pagination_and_token_reuse(fake: FakeRegistry) -> None:
    fake.tags = ["b", "a", "d", "c", "e"]  # unsorted, 3 pages
    cache = AuthCache()
    client = _client(fake.host, "team/app", credentials=Credentials(USER, PASSWORD), auth_cache=cache)
    assert await client.list_tags() == ["b", "a", "d", "c", "e"]
    assert fake.token_requests == ["repository:team/app:pull"]
    assert len(fake.hits) == 4  # the challenge, then 3 pages
    fake.hits.clear()
    fake.tags = ["x"]
    assert await client.list_tags() == ["x"]
    assert fake.hits == ["/v2/team/app/tags/list"]  # token reused: one request
    assert len(fake.token_requests) == 1


async def test_bearer_refused_credentials_and_null_tags(fake: FakeRegistry) -> None:
    with pytest.raises(AuthenticationError, match="refused the credentials") as err:
        await _client(fake.host, "team/app", credentials=Credentials(USER, "nope")).list_tags()
    assert "nope" not in str(err.value)
    fake.tags = None
    assert await _client(fake.host, "team/app", credentials=Credentials(USER, PASSWORD)).list_tags() == []


async def test_rate_limited(fake: FakeRegistry) -> None:
    fake.limited = 1
    client = _client(fake.host, "team/app", credentials=Credentials(USER, PASSWORD))
    with pytest.raises(RateLimited) as err:
        await client.list_tags()
    assert err.value.retry_after == 7.0
    assert "rate limited" in str(err.value)
    fake.tags = ["1.0"]
    assert await client.list_tags() == ["1.0"]


async def test_credentials_stay_with_the_registry(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.tags = ["a", "b", "c"]
    fake.next_base = "http://localhost:9"  # a page on another host
    client = _client(fake.host, "team/app", credentials=Credentials(USER, PASSWORD))
    with pytest.raises(RegistryError, match="another host"):
        await client.list_tags()
    tls, cert_pem = self_signed_tls(tmp_path)
    async with fake_registry(tls) as secure:
        secure.realm = "http://127.0.0.1:9/token"  # an HTTPS registry naming a plain-HTTP token service
        context = ssl.create_default_context(cadata=cert_pem.decode())
        https = RegistryClient(
            parse_image(f"{secure.host}/team/app"),
            credentials=Credentials(USER, PASSWORD),
            ssl_context=context,
        )
        with pytest.raises(RegistryError, match="not HTTPS"):
            await https.list_tags()
        secure.realm = None
        secure.tags = ["1.0"]
        assert await https.list_tags() == ["1.0"]


async def test_https_through_a_proxy_keeps_proxy_credentials_off_the_registry(tmp_path: Path) -> None:
    tls, cert_pem = self_signed_tls(tmp_path)
    async with fake_registry(tls) as secure, http_proxy() as proxy:
        secure.tags = ["1.0"]
        client = RegistryClient(
            parse_image(f"{secure.host}/team/app"),
            credentials=Credentials(USER, PASSWORD),
            ssl_context=ssl.create_default_context(cadata=cert_pem.decode()),
            proxy=proxy.url,
            proxy_username=proxy.username,
            proxy_password=proxy.password,
        )
        assert await client.list_tags() == ["1.0"]
        assert f"CONNECT {secure.host}" in proxy.seen
        assert "Proxy-Authorization" not in secure.header_names
        wrong = RegistryClient(
            parse_image(f"{secure.host}/team/app"),
            ssl_context=ssl.create_default_context(cadata=cert_pem.decode()),
            proxy=proxy.url,
            proxy_username=proxy.username,
            proxy_password="nope",
        )
        with pytest.raises(AuthenticationError, match="proxy refused") as err:
            await wrong.list_tags()
        assert "nope" not in str(err.value)


async def test_identity_token_and_digest_without_a_digest_header(fake: FakeRegistry) -> None:
    fake.tags = ["1.0"]
    client = _client(fake.host, "team/app", credentials=Credentials(identity_token=IDENTITY_TOKEN))
    assert await client.list_tags() == ["1.0"]
    assert fake.token_requests == ["repository:team/app:pull"]  # one refresh-token grant
    assert await client.digest("1.0") == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert all("application/vnd.oci.image.index.v1+json" in a for a in fake.manifest_accepts)
    assert all("application/vnd.docker.distribution.manifest.v2+json" in a for a in fake.manifest_accepts)
    with pytest.raises(AuthenticationError):
        await _client(fake.host, "team/app", credentials=Credentials(identity_token="stale")).list_tags()
