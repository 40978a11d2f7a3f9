"""Generator pieces: kustomize's hash suffix and its base64 line splitting."""

from __future__ import annotations

import pytest

from libs.kustomize.generate import content_hash, encode_base64_lines

pytestmark = pytest.mark.unit


def test_config_map_hash_matches_kustomize() -> None:
    # kubectl kustomize printed x-4h2mbtbbt6 for configMapGenerator [{name: x, literals: [a=b]}]
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert content_hash(obj) == "4h2mbtbbt6"


def test_hash_ignores_the_name_and_metadata() -> None:
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    renamed = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "prod-x", "labels": {"l": "1"}},
        "data": {"a": "b"},
    }
    assert content_hash(base) == content_hash(renamed)


def test_secret_hash_includes_type() -> None:
    # kubectl kustomize: app-login-9fkdhmtfc7 (Opaque, username=admin, password=s3cr3t!)
    data = {"username": encode_base64_lines(b"admin"), "password": encode_base64_lines(b"s3cr3t!")}
    opaque = {"kind": "Secret", "type": "Opaque", "metadata": {"name": "app-login"}, "data": data}
    assert content_hash(opaque) == "9fkdhmtfc7"
    assert content_hash({**opaque, "type": "kubernetes.io/tls"}) != "9fkdhmtfc7"


def test_base64_lines_of_seventy() -> None:
    assert encode_base64_lines(b"admin") == "YWRtaW4="
    long = encode_base64_lines(b"x" * 60)
    lines = long.split("\n")
    assert long.endswith("\n")
    assert [len(line) for line in lines[:-1]] == [70, 10]
