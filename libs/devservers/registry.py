"""docker-registry (the CNCF distribution registry) on loopback, and a small OCI distribution client.

The client speaks the distribution HTTP API with ``urllib.request`` — enough for tests and the local
demo to publish images (a tiny config blob and one layer), list tags, and delete manifests.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from email.message import Message
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from libs.devservers.ports import LOOPBACK_OPENER, http_status
from libs.devservers.procs import ManagedProcess, Server, launch_on_free_port

__all__ = [
    "OCI_CONFIG",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "DockerRegistry",
    "RegistryError",
    "delete_manifest",
    "list_tags",
    "manifest_digest",
    "push_image",
]

REGISTRY_BINARY = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Low on purpose: the registry checks the password on every request, and these are throw-away
# credentials for a loopback server.
_BCRYPT_ROUNDS = 6


class DockerRegistry(Server):
    """``docker-registry serve`` with filesystem storage in ``storage_dir``, deletes enabled, on a
    ``127.0.0.1`` port (a free one unless ``port`` is given); with ``htpasswd`` (user → password) it requires HTTP Basic auth."""

    def __init__(
        self,
        storage_dir: Path,
        htpasswd: Mapping[str, str] | None = None,
        *,
        realm: str = "sluice-registry",
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.storage_dir = Path(storage_dir).resolve()
        self.htpasswd = dict(htpasswd) if htpasswd is not None else None
        self.realm = realm
        self._startup_timeout = startup_timeout
        self._fixed_port = port
        self._port: int | None = None
        self.config_path = self.storage_dir / "registry-config.yml"
        self.htpasswd_path = self.storage_dir / "htpasswd"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DockerRegistry has not been started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` — the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _write_htpasswd(self) -> None:
        assert self.htpasswd is not None
        lines = []
        for user, password in self.htpasswd.items():
            if ":" in user:
                raise ValueError(f"htpasswd user names cannot contain ':': {user!r}")
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=_BCRYPT_ROUNDS)).decode()
            lines.append(f"{user}:{hashed}\n")
        self.htpasswd_path.write_text("".join(lines))

    def _write_config(self, port: int) -> list[str]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # No http.debug: the debug server stays off.
            "http": {
                "addr": f"127.0.0.1:{port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": self.realm, "path": str(self.htpasswd_path)}}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [REGISTRY_BINARY, "serve", str(self.config_path)]

    def _ready(self, process: ManagedProcess, port: int) -> bool:
        # A short per-try timeout: whatever else holds the port (a lost race) may never answer.
        return http_status(f"http://127.0.0.1:{port}/v2/", timeout=0.5) in {200, 401}

    def _launch(self) -> ManagedProcess:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.htpasswd is not None:
            self._write_htpasswd()
        process, port = launch_on_free_port(
            "docker-registry",
            self._write_config,
            ready=self._ready,
            log_path=self.storage_dir / "registry.log",
            timeout=self._startup_timeout,
            port=self._fixed_port,
        )
        self._port = port
        return process


class RegistryError(RuntimeError):
    """The registry answered with an error status (credentials are never part of the message)."""

    def __init__(self, method: str, url: str, status: int, body: bytes, headers: Message | None) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.www_authenticate = headers.get("WWW-Authenticate") if headers is not None else None
        detail = body.decode("utf-8", errors="replace").strip()[:500]
        super().__init__(f"{method} {url}: HTTP {status} {detail}")


# (username, password) for HTTP Basic auth, or None for anonymous requests
_Auth = tuple[str, str] | None


def _basic(username: str | None, password: str | None) -> _Auth:
    return None if username is None else (username, password or "")


def _request(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: _Auth = None,
) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with LOOPBACK_OPENER.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        raise RegistryError(method, url, exc.code, exc.read(), exc.headers) from None


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _repo_url(registry_url: str, repository: str, *rest: str) -> str:
    return "/".join([registry_url.rstrip("/"), "v2", repository, *rest])


def _upload_blob(registry_url: str, repository: str, blob: bytes, auth: _Auth) -> str:
    digest = _digest(blob)
    try:
        _request("HEAD", _repo_url(registry_url, repository, "blobs", digest), auth=auth)
        return digest  # already there
    except RegistryError as exc:
        if exc.status != 404:
            raise
    _, headers, _ = _request(
        "POST", _repo_url(registry_url, repository, "blobs", "uploads", ""), data=b"", auth=auth
    )
    location = urllib.parse.urljoin(registry_url, headers["Location"])
    separator = "&" if "?" in location else "?"
    _request(
        "PUT",
        f"{location}{separator}digest={urllib.parse.quote(digest)}",
        data=blob,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
    )
    return digest


def _tiny_layer(repository: str, tag: str) -> tuple[bytes, str]:
    """A gzipped tar holding one small file unique to this call; returns (layer, diff_id)."""
    content = f"{repository}:{tag} {uuid.uuid4()}\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("sluice-image.txt")
        info.size = len(content)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), _digest(tar_bytes)


def push_image(
    registry_url: str,
    repository: str,
    tag: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """Push a tiny OCI image (config blob + one layer, unique per call) as ``repository:tag``;
    returns the manifest digest ``sha256:…``."""
    auth = _basic(username, password)
    layer, diff_id = _tiny_layer(repository, tag)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.ref.name": tag}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    config_digest = _upload_blob(registry_url, repository, config, auth)
    layer_digest = _upload_blob(registry_url, repository, layer, auth)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        },
        separators=(",", ":"),
    ).encode()
    digest = _digest(manifest)
    _, headers, _ = _request(
        "PUT",
        _repo_url(registry_url, repository, "manifests", tag),
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        auth=auth,
    )
    answered = headers.get("Docker-Content-Digest")
    if answered is not None and answered != digest:
        raise RuntimeError(f"registry stored {repository}:{tag} as {answered}, expected {digest}")
    return digest


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def list_tags(
    registry_url: str,
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> list[str]:
    """All tags of ``repository`` (following pagination), in the registry's order."""
    url: str | None = _repo_url(registry_url, repository, "tags", "list")
    tags: list[str] = []
    while url is not None:
        _, headers, body = _request("GET", url, auth=_basic(username, password))
        tags.extend(json.loads(body).get("tags") or [])
        match = _NEXT_LINK.search(headers.get("Link") or "")
        url = urllib.parse.urljoin(registry_url, match.group(1)) if match else None
    return tags


def manifest_digest(
    registry_url: str,
    repository: str,
    reference: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """The digest of the manifest ``reference`` (a tag or digest) points at."""
    _, headers, _ = _request(
        "HEAD",
        _repo_url(registry_url, repository, "manifests", reference),
        headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"},
        auth=_basic(username, password),
    )
    digest = headers.get("Docker-Content-Digest")
    if digest is None:
        raise RuntimeError(f"registry gave no digest for {repository}:{reference}")
    return digest


def delete_manifest(
    registry_url: str,
    repository: str,
    reference: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Delete a manifest (by digest; a tag is resolved to its digest first) — its tags go with it."""
    digest = reference
    if not reference.startswith("sha256:"):
        digest = manifest_digest(registry_url, repository, reference, username=username, password=password)
    _request(
        "DELETE",
        _repo_url(registry_url, repository, "manifests", digest),
        auth=_basic(username, password),
    )
