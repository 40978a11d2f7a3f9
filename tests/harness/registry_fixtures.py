"""OCI registry fixtures: docker-registry, anonymous and with htpasswd auth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from libs.devservers.registry import DockerRegistry
from tests.harness.hygiene import register_server

__all__ = ["AuthRegistry", "registry", "registry_auth"]


@dataclass(frozen=True)
class AuthRegistry:
    """A registry that requires HTTP Basic auth with :attr:`username` / :attr:`password`."""

    server: DockerRegistry
    username: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """An anonymous registry: ``.url`` (``http://127.0.0.1:PORT``) and ``.host`` (``127.0.0.1:PORT``)."""
    server = DockerRegistry(tmp_path_factory.mktemp("registry"))
    register_server(server)
    with server:
        yield server


@pytest.fixture(scope="session")
def registry_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """A registry behind htpasswd: ``.url``, ``.host``, ``.username``, ``.password``."""
    username, password = "sluice", "registry-pass-123"
    server = DockerRegistry(tmp_path_factory.mktemp("registry-auth"), htpasswd={username: password})
    register_server(server)
    with server:
        yield AuthRegistry(server, username, password)
