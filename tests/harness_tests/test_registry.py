"""docker-registry and the OCI client against each other."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from libs.devservers.ports import LOOPBACK_OPENER, http_status
from libs.devservers.registry import (
    DockerRegistry,
    RegistryError,
    delete_manifest,
    list_tags,
    manifest_digest,
    push_image,
)
from tests.harness.hygiene import child_pids
from tests.harness.registry_fixtures import AuthRegistry

pytestmark = pytest.mark.integration


def test_registry_starts_answers_and_stops_leaving_nothing(tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "reg") as server:
        pid = server.pid
        assert pid in child_pids()
        assert server.url == f"http://{server.host}"
        assert http_status(f"{server.url}/v2/") == 200
    assert not server.running
    assert pid not in child_pids()
    assert http_status(f"{server.url}/v2/") is None


def test_push_then_list_tags_then_delete(registry: DockerRegistry) -> None:
    first = push_image(registry.url, "team/podinfo", "5.0.0")
    second = push_image(registry.url, "team/podinfo", "5.0.1")
    assert first.startswith("sha256:") and len(first) == 71
    assert first != second  # unique content per push
    assert list_tags(registry.url, "team/podinfo") == ["5.0.0", "5.0.1"]
    assert manifest_digest(registry.url, "team/podinfo", "5.0.1") == second

    request = urllib.request.Request(
        f"{registry.url}/v2/team/podinfo/manifests/5.0.0",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with LOOPBACK_OPENER.open(request) as response:
        assert response.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
        assert response.headers["Docker-Content-Digest"] == first

    delete_manifest(registry.url, "team/podinfo", "5.0.0")
    assert list_tags(registry.url, "team/podinfo") == ["5.0.1"]


def test_unknown_repository_is_a_404(registry: DockerRegistry) -> None:
    with pytest.raises(RegistryError) as error:
        list_tags(registry.url, "nobody/here")
    assert error.value.status == 404


def test_auth_registry_challenges_anonymous_and_accepts_the_user(registry_auth: AuthRegistry) -> None:
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        LOOPBACK_OPENER.open(f"{registry_auth.url}/v2/")
    assert anonymous.value.code == 401
    assert anonymous.value.headers["WWW-Authenticate"] == 'Basic realm="sluice-registry"'

    with pytest.raises(RegistryError) as rejected:
        push_image(registry_auth.url, "private/app", "1.0.0")
    assert rejected.value.status == 401
    assert rejected.value.www_authenticate == 'Basic realm="sluice-registry"'

    with pytest.raises(RegistryError) as wrong:
        list_tags(registry_auth.url, "private/app", username=registry_auth.username, password="wrong")
    assert wrong.value.status == 401

    creds = {"username": registry_auth.username, "password": registry_auth.password}
    digest = push_image(registry_auth.url, "private/app", "1.0.0", **creds)
    assert list_tags(registry_auth.url, "private/app", **creds) == ["1.0.0"]
    assert manifest_digest(registry_auth.url, "private/app", "1.0.0", **creds) == digest
    assert registry_auth.password not in str(wrong.value)
