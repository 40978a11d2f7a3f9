"""Image names, docker config Secrets and auth challenges, parsed as registries and Docker write them."""

from __future__ import annotations

import base64
import json

import pytest

from libs.registry import Credentials, credentials_from_dockerconfig, parse_challenge, parse_image

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("image", "canonical", "api_host"),
    [
        ("alpine", "docker.io/library/alpine", "registry-1.docker.io"),
        ("fluxcd/flux", "docker.io/fluxcd/flux", "registry-1.docker.io"),
        ("docker.io/alpine", "docker.io/library/alpine", "registry-1.docker.io"),
        ("index.docker.io/fluxcd/flux", "docker.io/fluxcd/flux", "registry-1.docker.io"),
        ("ghcr.io/stefanprodan/podinfo", "ghcr.io/stefanprodan/podinfo", "ghcr.io"),
        ("localhost:5000/app", "localhost:5000/app", "localhost:5000"),
        ("localhost/app", "localhost/app", "localhost"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app", "127.0.0.1:5000"),
    ],
)
def test_parse_image(image: str, canonical: str, api_host: str) -> None:
    name = parse_image(image)
    assert (name.canonical, name.api_host) == (canonical, api_host)


@pytest.mark.parametrize(
    "image", ["", "https://ghcr.io/app", "ghcr.io/app:1.0", "app@sha256:abc", "Upper/Case"]
)
def test_parse_image_refuses(image: str) -> None:
    with pytest.raises(ValueError):
        parse_image(image)


def test_dockerconfigjson_lookup() -> None:
    auth = base64.b64encode(b"bob:s3cret").decode()
    doc = json.dumps(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "ghcr.io": {"username": "alice", "password": "pw"},
                "harbor.example.com": {"identitytoken": "refresh"},
            }
        }
    ).encode()
    assert credentials_from_dockerconfig(doc, "docker.io") == Credentials("bob", "s3cret")
    assert credentials_from_dockerconfig(doc, "ghcr.io") == Credentials("alice", "pw")
    assert credentials_from_dockerconfig(doc, "harbor.example.com") == Credentials(identity_token="refresh")
    assert credentials_from_dockerconfig(doc, "quay.io") is None
    with pytest.raises(ValueError, match="auths"):
        credentials_from_dockerconfig(b"{}", "ghcr.io")
    legacy = json.dumps({"quay.io": {"auth": auth}}).encode()  # .dockercfg
    assert credentials_from_dockerconfig(legacy, "quay.io") == Credentials("bob", "s3cret")
    assert "s3cret" not in repr(Credentials("bob", "s3cret"))


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a:pull",
    }
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
