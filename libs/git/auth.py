"""Credentials for git over https and ssh, handed to git without ever touching a command line.

- ssh: the private key (``identity``) and ``known_hosts`` are written to a private temporary
  directory (0700, files 0600) and ``GIT_SSH_COMMAND`` points ssh at them with
  ``StrictHostKeyChecking=yes``: host keys are always verified, and with no ``known_hosts`` every
  host is unknown, so the connection fails. A key passphrase (``password``) reaches ssh through
  an askpass helper that reads it from a 0600 file.
- https: ``username``/``password`` through a ``GIT_ASKPASS`` helper reading 0600 files;
  ``bearerToken`` as an ``Authorization`` header through ``GIT_CONFIG_COUNT``/``KEY``/``VALUE``
  environment variables; ``ca.crt`` as ``http.sslCAInfo``; ``tls.crt``/``tls.key`` (mTLS) as
  ``http.sslCert``/``http.sslKey``; a proxy as ``http.proxy``.

Nothing here logs; values never appear in exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["Credentials", "ProxyConfig", "git_env"]


@dataclass(frozen=True)
class ProxyConfig:
    address: str
    username: str | None = None
    password: str | None = None

    def url(self) -> str:
        parts = urlsplit(self.address)
        if not self.username:
            return self.address
        userinfo = quote(self.username, safe="")
        if self.password:
            userinfo += ":" + quote(self.password, safe="")
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Credentials:
    """What a Flux ``secretRef`` Secret may hold for git (all optional)."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    ca_cert: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    proxy: ProxyConfig | None = None

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes]) -> Credentials:
        """From a Secret's decoded ``data`` (Flux's key names)."""

        def text(key: str) -> str | None:
            value = data.get(key)
            return value.decode("utf-8", errors="replace") if value else None

        return cls(
            username=text("username"),
            password=text("password"),
            bearer_token=text("bearerToken"),
            identity=text("identity"),
            known_hosts=text("known_hosts"),
            ca_cert=text("ca.crt") or text("caFile"),
            tls_cert=text("tls.crt") or text("certFile"),
            tls_key=text("tls.key") or text("keyFile"),
        )

    def __repr__(self) -> str:  # never show the values
        present = [k for k, v in vars(self).items() if v]
        return f"Credentials(keys={present})"

    __str__ = __repr__


def _write(path: Path, content: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


def _askpass_script(directory: Path) -> Path:
    """A helper git/ssh call with the prompt as its argument: it answers the user name for a
    "Username" prompt and the password (or key passphrase) otherwise, read from 0600 files."""
    script = directory / "askpass.sh"
    user_file = shlex.quote(str(directory / "username"))
    pass_file = shlex.quote(str(directory / "password"))
    _write(
        script,
        f'#!/bin/sh\ncase "$1" in\n  Username*) cat {user_file} ;;\n  *) cat {pass_file} ;;\nesac\n',
        0o700,
    )
    return script


def _prepare(directory: Path, url: str, creds: Credentials | None, connect_timeout: int) -> dict[str, str]:
    scheme = urlsplit(url).scheme.lower()
    env: dict[str, str] = {}
    config: list[tuple[str, str]] = []
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "IdentitiesOnly=yes",
    ]
    known_hosts = "/dev/null"
    if creds is not None and creds.known_hosts:
        path = directory / "known_hosts"
        _write(path, creds.known_hosts if creds.known_hosts.endswith("\n") else creds.known_hosts + "\n")
        known_hosts = str(path)
    ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if scheme == "ssh":
        if creds is not None and creds.identity:
            key = directory / "identity"
            _write(key, creds.identity if creds.identity.endswith("\n") else creds.identity + "\n")
            ssh += ["-i", str(key)]
        if creds is not None and creds.identity and creds.password:
            _write(directory / "password", creds.password)
            _write(directory / "username", "")
            env["SSH_ASKPASS"] = str(_askpass_script(directory))
            env["SSH_ASKPASS_REQUIRE"] = "force"
            env["DISPLAY"] = "sluice:0"
        else:
            ssh += ["-o", "BatchMode=yes"]
    else:
        ssh += ["-o", "BatchMode=yes"]
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    if scheme in ("http", "https") and creds is not None:
        if creds.username or creds.password:
            _write(directory / "username", creds.username or "")
            _write(directory / "password", creds.password or "")
            env["GIT_ASKPASS"] = str(_askpass_script(directory))
        if creds.bearer_token:
            config.append(("http.extraHeader", f"Authorization: Bearer {creds.bearer_token}"))
        if creds.ca_cert:
            ca = directory / "ca.crt"
            _write(ca, creds.ca_cert)
            config.append(("http.sslCAInfo", str(ca)))
        if creds.tls_cert and creds.tls_key:
            cert, key_file = directory / "tls.crt", directory / "tls.key"
            _write(cert, creds.tls_cert)
            _write(key_file, creds.tls_key)
            config += [("http.sslCert", str(cert)), ("http.sslKey", str(key_file))]
    if creds is not None and creds.proxy is not None and scheme in ("http", "https"):
        config.append(("http.proxy", creds.proxy.url()))
    if config:
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (name, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = name
            env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


@contextlib.asynccontextmanager
async def git_env(
    url: str, creds: Credentials | None, *, connect_timeout: int = 30
) -> AsyncIterator[dict[str, str]]:
    """Environment additions for git talking to ``url`` with ``creds``; the private files they
    name exist until the block ends."""
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sluice-git-auth-"))
    try:
        env = await asyncio.to_thread(_prepare, directory, url, creds, connect_timeout)
        yield env
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)
