"""An OCI distribution API client for real registries (tags and manifest digests), over aiohttp.

- Anonymous, HTTP Basic and the bearer-token challenge flow (`WWW-Authenticate: Bearer realm=…,
  service=…, scope=…` as Docker Hub, GHCR and Harbor answer): credentials from a
  `kubernetes.io/dockerconfigjson` Secret. The scheme a host asked for and the tokens it issued are
  remembered in an `AuthCache`, so a repeated scan costs one tag-list request.
- Tag lists follow `Link: <…>; rel="next"` pagination; `"tags": null` and unsorted lists are fine.
- `429 Too Many Requests` raises `RateLimited` with the `Retry-After` delay.
- `insecure` speaks plain HTTP; a CA / client certificate go in through an `ssl.SSLContext`.

Credentials never appear in exceptions: messages name the registry and repository only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict

from libs.common.runtime.redact import redact_url, sanitize_message

__all__ = [
    "MANIFEST_ACCEPT",
    "AuthCache",
    "AuthenticationError",
    "Credentials",
    "ImageName",
    "RateLimited",
    "RegistryClient",
    "RegistryError",
    "credentials_from_dockerconfig",
    "parse_image",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    )
)
MAX_PAGES = 1000
DEFAULT_RETRY_AFTER = 60.0
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)

Observe = Callable[[str, str], None]
"""Called once per HTTP request with (what, outcome): what is `tags`, `manifest` or `token`."""


class RegistryError(Exception):
    """A registry request failed; the message is safe for status and events."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(sanitize_message(message))
        self.status = status


class AuthenticationError(RegistryError):
    """The registry refused the credentials (or asked for some and none were given)."""


class RateLimited(RegistryError):
    """`429 Too Many Requests`: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ImageName:
    """A parsed image repository: `host` as written (docker.io for Docker Hub), the API host and path."""

    host: str
    repository: str

    @property
    def canonical(self) -> str:
        """`docker.io/library/alpine` for `alpine`; other hosts kept as written."""
        return f"{self.host}/{self.repository}"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host


def parse_image(image: str) -> ImageName:
    """Parse `spec.image` as go-containerregistry does (`name.NewRepository`); ValueError when invalid.

    A first segment with a `.` or `:` or equal to `localhost` is a registry host; otherwise the
    image is on Docker Hub, where single-segment names live under `library/`."""
    text = image.strip()
    if not text or "://" in text:
        raise ValueError(f"invalid image name {image!r}: expected a repository without scheme")
    if "@" in text or (":" in text.rsplit("/", 1)[-1] and "/" in text):
        raise ValueError(f"invalid image name {image!r}: a tag or digest is not allowed")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, text
    if host in DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPOSITORY.match(path):
        raise ValueError(f"invalid image name {image!r}: repository must be lowercase [a-z0-9._-/]")
    return ImageName(host, path)


@dataclass(frozen=True)
class Credentials:
    """Registry credentials: a username/password pair, or an identity token (`identitytoken`)."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _host_of(key: str) -> str:
    text = key if "://" in key else f"//{key}"
    host = urlsplit(text).netloc or key
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def credentials_from_dockerconfig(data: bytes, host: str) -> Credentials | None:
    """The credentials for `host` in a `.dockerconfigjson` (or legacy `.dockercfg`) document (None when it has none).

    Keys may be bare hosts, URLs (`https://index.docker.io/v1/`) or host/path; `auth` is base64
    `user:password`, `username`/`password` and `identitytoken` are read too. ValueError when the
    document is not a docker config."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise ValueError("the Secret's .dockerconfigjson is not valid JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if auths is None and isinstance(doc, dict) and doc and all(isinstance(v, dict) for v in doc.values()):
        auths = doc  # the legacy .dockercfg layout: the host map itself
    if not isinstance(auths, dict):
        raise ValueError("the Secret's .dockerconfigjson has no 'auths' object")
    wanted = DOCKER_HUB if host in DOCKER_HUB_ALIASES else host
    for key, entry in auths.items():
        if not isinstance(entry, dict) or _host_of(str(key)) != wanted:
            continue
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        encoded = entry.get("auth")
        if encoded:
            try:
                username, _, password = base64.b64decode(str(encoded)).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(f"the 'auth' entry for {key} is not base64 user:password") from None
        return Credentials(username, password, str(entry.get("identitytoken") or ""))
    return None


@dataclass
class _Token:
    value: str
    expires: float


@dataclass
class AuthCache:
    """What registries asked for, shared across scans: `host → "basic" | "bearer"` and bearer
    tokens by (realm, service, scope, user). Lets a repeated scan go straight to the tag list."""

    schemes: dict[str, str] = field(default_factory=dict)
    tokens: dict[tuple[str, str, str, str], _Token] = field(default_factory=dict)
    challenges: dict[str, dict[str, str]] = field(default_factory=dict)

    def token(self, key: tuple[str, str, str, str]) -> str | None:
        entry = self.tokens.get(key)
        if entry is None or entry.expires <= time.monotonic():
            self.tokens.pop(key, None)
            return None
        return entry.value


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {realm, service, …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def _retry_after(value: str | None) -> float:
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def _proxy_error(exc: aiohttp.ClientHttpProxyError, doing: str) -> RegistryError:
    """The proxy refused the tunnel (CONNECT): 407 is an authentication failure."""
    if exc.status == 407:
        return AuthenticationError(f"{doing}: the proxy refused the credentials (HTTP 407)", 407)
    return RegistryError(f"{doing}: the proxy answered HTTP {exc.status}", exc.status)


@dataclass
class RegistryClient:
    """Talks to one registry host for one repository's scans (create per reconcile; cheap)."""

    image: ImageName
    credentials: Credentials | None = None
    insecure: bool = False
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 60.0
    auth_cache: AuthCache = field(default_factory=AuthCache)
    observe: Observe | None = None
    user_agent: str = "sluice-image-scan"
    proxy: str | None = None
    """An HTTP(S) proxy URL every request goes through (`proxySecretRef.address`)."""
    proxy_username: str = ""
    proxy_password: str = field(default="", repr=False)

    @property
    def base_url(self) -> str:
        scheme = "http" if self.insecure else "https"
        return f"{scheme}://{self.image.api_host}"

    def _what(self) -> str:
        return f"{self.image.canonical}"

    def _user(self) -> str:
        return self.credentials.username if self.credentials else ""

    async def list_tags(self) -> list[str]:
        """Every tag of the repository, following `Link` pagination, in the registry's order."""
        url: str | None = f"{self.base_url}/v2/{self.image.repository}/tags/list"
        tags: list[str] = []
        pages = 0
        async with self._session() as session:
            while url is not None:
                pages += 1
                if pages > MAX_PAGES:
                    raise RegistryError(f"listing tags of {self._what()}: more than {MAX_PAGES} pages")
                status, headers, body = await self._get(session, "tags", "GET", url, "application/json")
                if status == 404:
                    raise RegistryError(f"repository {self._what()} not found (HTTP 404)", 404)
                self._check(status, "listing tags of")
                try:
                    doc = json.loads(body or b"{}")
                except ValueError:
                    raise RegistryError(f"listing tags of {self._what()}: the answer is not JSON") from None
                page = doc.get("tags") if isinstance(doc, dict) else None
                tags.extend(str(t) for t in page or [] if isinstance(t, str))
                match = _NEXT_LINK.search(headers.get("Link", ""))
                url = urljoin(url, match.group(1)) if match else None
                if url is not None and urlsplit(url).netloc != urlsplit(self.base_url).netloc:
                    # Credentials go only to the registry itself, never to a host a page names.
                    raise RegistryError(f"listing tags of {self._what()}: the next page is on another host")
        return tags

    async def digest(self, tag: str) -> str:
        """The manifest digest `tag` points at (HEAD with the full Accept list; GET as fallback)."""
        url = f"{self.base_url}/v2/{self.image.repository}/manifests/{tag}"
        async with self._session() as session:
            status, headers, _ = await self._get(session, "manifest", "HEAD", url, MANIFEST_ACCEPT)
            if status == 200 and headers.get("Docker-Content-Digest"):
                return headers["Docker-Content-Digest"]
            status, headers, body = await self._get(session, "manifest", "GET", url, MANIFEST_ACCEPT)
            if status == 404:
                raise RegistryError(f"manifest {self._what()}:{tag} not found (HTTP 404)", 404)
            self._check(status, f"fetching the manifest {tag} of")
            return headers.get("Docker-Content-Digest") or f"sha256:{hashlib.sha256(body).hexdigest()}"

    # --- HTTP ---------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": self.user_agent},
        )

    def _via_proxy(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        """The request arguments that route `url` through the proxy. Its credentials go in
        `Proxy-Authorization` on the request itself for http:// targets (the proxy reads it), and
        only on the CONNECT for https:// targets, so they never reach the registry."""
        if not self.proxy:
            return {}
        args: dict[str, Any] = {"proxy": self.proxy}
        if self.proxy_username or self.proxy_password:
            raw = f"{self.proxy_username}:{self.proxy_password}".encode()
            value = "Basic " + base64.b64encode(raw).decode()
            if urlsplit(url).scheme == "http":
                headers["Proxy-Authorization"] = value
            else:
                args["proxy_headers"] = {"Proxy-Authorization": value}
        return args

    def _check(self, status: int, doing: str) -> None:
        if status in (401, 403):
            raise AuthenticationError(
                f"{doing} {self._what()}: HTTP {status} (authentication failed or access denied)", status
            )
        if status == 407:
            raise AuthenticationError(
                f"{doing} {self._what()}: the proxy refused the credentials (HTTP 407)", status
            )
        if status >= 300:
            raise RegistryError(f"{doing} {self._what()}: unexpected HTTP {status}", status)

    async def _get(
        self, session: aiohttp.ClientSession, what: str, method: str, url: str, accept: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        host = self.image.api_host
        for attempt in range(2):
            headers = {"Accept": accept}
            try:
                auth = await self._authorization(session, host)
            except RegistryError:
                # Start the next attempt afresh (anonymous, a new challenge): the registry may have changed.
                self.auth_cache.schemes.pop(host, None)
                self.auth_cache.challenges.pop(host, None)
                raise
            if auth:
                headers["Authorization"] = auth
            status, resp_headers, body = await self._send(session, what, method, url, headers)
            if status == 429:
                raise RateLimited(
                    f"rate limited by {self.image.host} (HTTP 429) while reading {self._what()}",
                    _retry_after(resp_headers.get("Retry-After")),
                )
            if status != 401 or attempt == 1:
                return status, resp_headers, body
            challenge = resp_headers.get("WWW-Authenticate", "")
            scheme, params = parse_challenge(challenge)
            if scheme not in ("basic", "bearer"):
                return status, resp_headers, body
            if scheme == "basic" and (self.credentials is None or auth):
                return status, resp_headers, body  # no credentials, or these were refused
            if scheme == "bearer":
                if auth:
                    # The cached token was refused (expired early, or too narrow): ask for a new one.
                    self.auth_cache.tokens.clear()
                self.auth_cache.challenges[host] = params
            self.auth_cache.schemes[host] = scheme
        raise AssertionError("unreachable")

    async def _send(
        self, session: aiohttp.ClientSession, what: str, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        outcome = "error"
        try:
            sent = dict(headers)
            via = self._via_proxy(url, sent)
            async with session.request(method, url, headers=sent, allow_redirects=True, **via) as resp:
                body = await resp.read() if method != "HEAD" else b""
                outcome = str(resp.status)
                return resp.status, CIMultiDict(resp.headers), body  # header names stay case-insensitive
        except TimeoutError:
            outcome = "timeout"
            raise RegistryError(f"timed out after {self.timeout:g}s talking to {redact_url(url)}") from None
        except aiohttp.ClientHttpProxyError as exc:
            outcome = str(exc.status)
            raise _proxy_error(exc, f"{method} {redact_url(url)}") from None
        except aiohttp.ClientError as exc:
            raise RegistryError(f"{method} {redact_url(url)}: {type(exc).__name__}: {exc}") from None
        finally:
            if self.observe is not None:
                self.observe(what, outcome)

    def _scope(self) -> str:
        return f"repository:{self.image.repository}:pull"

    async def _authorization(self, session: aiohttp.ClientSession, host: str) -> str | None:
        scheme = self.auth_cache.schemes.get(host)
        if scheme == "basic":
            return self.credentials.basic() if self.credentials else None
        if scheme != "bearer":
            return None
        params = self.auth_cache.challenges.get(host) or {}
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{self.image.host} asked for a bearer token without a realm")
        if not self.insecure and urlsplit(realm).scheme != "https":
            # An HTTPS registry sending credentials to a plain-HTTP token service would leak them.
            raise RegistryError(
                f"{self.image.host} named a token service that is not HTTPS: {redact_url(realm)}"
            )
        service = params.get("service", "")
        scope = self._scope()
        key = (realm, service, scope, self._user())
        token = self.auth_cache.token(key)
        if token is None:
            token, lifetime = await self._fetch_token(session, realm, service, scope)
            # Refresh a little early; registries issue tokens for 60 s and up.
            self.auth_cache.tokens[key] = _Token(token, time.monotonic() + max(lifetime - 10.0, 1.0))
        return f"Bearer {token}"

    async def _fetch_token(
        self, session: aiohttp.ClientSession, realm: str, service: str, scope: str
    ) -> tuple[str, float]:
        creds = self.credentials
        query: dict[str, str] = {"scope": scope}
        if service:
            query["service"] = service
        headers: dict[str, str] = {}
        method = "GET"
        data: Any = None
        if creds is not None and creds.identity_token:
            # OAuth2 refresh-token grant, as docker does with an identity token.
            method = "POST"
            data = urlencode(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "service": service,
                    "scope": scope,
                    "client_id": self.user_agent,
                }
            )
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif creds is not None and (creds.username or creds.password):
            headers["Authorization"] = creds.basic()
        url = realm if method == "POST" else f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        outcome = "error"
        try:
            via = self._via_proxy(url, headers)
            async with session.request(method, url, headers=headers, data=data, **via) as resp:
                outcome = str(resp.status)
                body = await resp.read()
                status = resp.status
        except TimeoutError:
            outcome = "timeout"
            raise RegistryError(f"timed out getting a token from {redact_url(realm)}") from None
        except aiohttp.ClientHttpProxyError as exc:
            outcome = str(exc.status)
            raise _proxy_error(exc, f"getting a token from {redact_url(realm)}") from None
        except aiohttp.ClientError as exc:
            raise RegistryError(f"getting a token from {redact_url(realm)}: {type(exc).__name__}") from None
        finally:
            if self.observe is not None:
                self.observe("token", outcome)
        if status == 429:
            raise RateLimited(
                f"rate limited by the token service {redact_url(realm)} (HTTP 429)", DEFAULT_RETRY_AFTER
            )
        if status in (401, 403):
            raise AuthenticationError(
                f"the token service {redact_url(realm)} refused the credentials for {self._what()} (HTTP {status})",
                status,
            )
        if status != 200:
            raise RegistryError(f"the token service {redact_url(realm)} answered HTTP {status}", status)
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(
                f"the token service {redact_url(realm)} answered something not JSON"
            ) from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not token:
            raise RegistryError(f"the token service {redact_url(realm)} gave no token")
        lifetime = float(doc.get("expires_in") or 60)
        return str(token), lifetime
