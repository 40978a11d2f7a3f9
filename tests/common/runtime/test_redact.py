"""Secrets never reach messages: URL credentials, sensitive query values, key=value pairs, PEM keys."""

from __future__ import annotations

import pytest

from libs.common.runtime.redact import is_sensitive_key, redact_structure, redact_url, sanitize_message

pytestmark = pytest.mark.unit

PEM = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDgOp8Nw1i+vMm2jg6wKM7zAnIFy2Ywy5xQ3Qa1fVnFuQAAAJgB3S1vAd0t
-----END OPENSSH PRIVATE KEY-----"""


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@host/x?token=y", "https://***@host/x?token=***"),
        ("https://ghp_abc123@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("https://host/x?a=1&access_token=zz&b=2", "https://host/x?a=1&access_token=***&b=2"),
        (
            "https://bucket.s3.amazonaws.com/a.tgz?X-Amz-Credential=AKIA&X-Amz-Signature=f00",
            "https://bucket.s3.amazonaws.com/a.tgz?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("ssh://git@github.com:22/org/repo", "ssh://git@github.com:22/org/repo"),
        ("ssh://git:pw@github.com/org/repo", "ssh://***@github.com/org/repo"),
        ("nats://admin:s3cret@127.0.0.1:4222", "nats://***@127.0.0.1:4222"),
        ("https://example.com/charts/index.yaml", "https://example.com/charts/index.yaml"),
        ("oci://ghcr.io/org/app:1.2.3", "oci://ghcr.io/org/app:1.2.3"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "failed to clone https://bot:ghp_x1@github.com/org/repo.git: exit status 128",
            "failed to clone https://***@github.com/org/repo.git: exit status 128",
        ),
        (
            "GET https://charts.example.com/index.yaml?token=abc returned 401",
            "GET https://charts.example.com/index.yaml?token=*** returned 401",
        ),
        ("login failed: password=hunter2 user=bob", "login failed: password=*** user=bob"),
        ('auth "api_key": "k-123" rejected', 'auth "api_key": "***" rejected'),
        ("header Authorization: Bearer eyJhbGciOi.x.y was refused", "header Authorization: *** was refused"),
        ("sent Bearer eyJhbGciOi.x.y", "sent Bearer ***"),
        ("proxy wants Basic dXNlcjpwYXNz", "proxy wants Basic ***"),
        (
            "basic authentication failed: Bearer token required",
            "basic authentication failed: Bearer token required",
        ),
        ("the token was rejected", "the token was rejected"),
        (
            f"bad key {PEM} in secret flux-system/ssh",
            "bad key [REDACTED PRIVATE KEY] in secret flux-system/ssh",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow truncated",
            "[REDACTED PRIVATE KEY]",
        ),
        # Ordinary words are left alone: a message about a missing secret names it.
        (
            'secret "flux-system/git-creds" not found',
            'secret "flux-system/git-creds" not found',
        ),
        ("kustomization path ./apps not found", "kustomization path ./apps not found"),
        (
            'registry said {"client_secret": "cs-1", "secretRef": "creds", "identity":"k"}',
            'registry said {"client_secret": "***", "secretRef": "creds", "identity":"***"}',
        ),
        ("", ""),
    ],
)
def test_sanitize_message(text: str, expected: str) -> None:
    assert sanitize_message(text) == expected


def test_public_certificates_are_kept() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert sanitize_message(cert) == cert


def test_sanitize_is_idempotent() -> None:
    text = f"https://u:p@h/x?token=t password=p {PEM}"
    once = sanitize_message(text)
    assert sanitize_message(once) == once


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("Authorization", True),
        ("bearer_token", True),
        ("identity", True),
        ("client_secret", True),
        ("apiKey", True),
        ("secret_name", False),
        ("secretRef", False),
        ("kind", False),
        ("namespace", False),
        ("revision", False),
        ("token_count", False),
        ("password_file", False),
    ],
)
def test_is_sensitive_key(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_redact_structure_walks_nested_values() -> None:
    value = {
        "url": "https://u:p@h/",
        "auth": {"password": "p", "username": "bob"},
        "items": [{"token": "t"}, "plain"],
        "count": 3,
    }
    assert redact_structure(value) == {
        "url": "https://***@h/",
        "auth": {"password": "***", "username": "bob"},
        "items": [{"token": "***"}, "plain"],
        "count": 3,
    }
