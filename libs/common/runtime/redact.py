"""Keeping secrets out of logs, status conditions and events.

Three tools, used by the log formatter and by anything that turns an error into text a user sees:

- ``is_sensitive_key(key)``: does a field/header/query name look like it holds a secret
  (password, token, secret, identity, authorization, bearer, …)?
- ``redact_url(url)``: masks the userinfo and sensitive query values of one URL
  (``https://user:pass@host/x?token=y`` → ``https://***@host/x?token=***``).
- ``sanitize_message(text)``: applies ``redact_url`` to every URL inside free text, masks
  ``password=…``/``Authorization: Bearer …`` style pairs, and removes PEM private key blocks.
- ``redact_value(key, value)``: masks a structured value by its key, recursing into mappings and
  sequences; strings under harmless keys are still passed through ``sanitize_message``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

MASK = "***"
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git", "sftp"})
PRIVATE_KEY_MASK = "[REDACTED PRIVATE KEY]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|pwd|token|secret|identity|authorization|bearer|credential|"
    r"api[-_]?key|access[-_]?key|private[-_]?key|client[-_]?key|cookie|session[-_]?id"
)
# Query parameters carry a few more kinds of credential (pre-signed URLs, API keys, OAuth codes).
_SENSITIVE_QUERY_KEY = re.compile(
    _SENSITIVE_KEY.pattern + r"|signature|^sig$|^key$|^code$|^auth$|x-amz-security-token"
)
# Names of things that are not themselves secret even when they mention one:
# ``secret_name``, ``secretRef``, ``token_count``, ``identity_file`` …
_HARMLESS_SUFFIX = re.compile(r"(name|names|ref|refs|namespace|kind|count|file|path|len|length|type)$")

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>`]+")
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
    re.DOTALL,
)
# "Bearer <token>" / "Basic <base64>": only a credential-looking word counts, not "basic auth".
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/\-]+=*)")
# key=value anywhere; key: value only for keys that are unambiguous as labels in prose.
_KV_EQUALS = re.compile(
    r"(?i)(?<![\w-])([\w-]*(?:password|passwd|passphrase|token|secret|api[-_]?key|access[-_]?key|"
    r"authorization|credential)s?)(\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)"
)
_KV_COLON = re.compile(
    r"(?i)(?<![\w-])(\"?(?:password|passwd|passphrase|token|api[-_]?key|access[-_]?key|authorization)\"?)"
    r"(\s*:\s*)(\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)\s+)?[^\s,;\"'}]+)"
)

# "key": "value" inside JSON text; the key decides (see is_sensitive_key).
_JSON_PAIR = re.compile(r'"([A-Za-z0-9_.\-]+)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')


def is_sensitive_key(key: str) -> bool:
    """Whether a field, header or setting named ``key`` should never have its value shown."""
    normalized = key.lower().replace(".", "_")
    if _HARMLESS_SUFFIX.search(normalized):
        return False
    return _SENSITIVE_KEY.search(normalized) is not None


def _is_sensitive_query_key(key: str) -> bool:
    normalized = key.lower()
    return is_sensitive_key(normalized) or _SENSITIVE_QUERY_KEY.search(normalized) is not None


def _redact_query(query: str) -> str:
    if not query:
        return query
    parts: list[str] = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        decoded = parse_qsl(pair, keep_blank_values=True)
        key = decoded[0][0] if decoded else name
        if sep and _is_sensitive_query_key(key):
            parts.append(f"{name}={MASK}")
        else:
            parts.append(pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """Mask the credentials of one URL: userinfo becomes ``***`` and sensitive query values ``***``.

    Scheme, host, port, path and harmless query parameters are kept so the URL stays useful in a
    message. Text that does not parse as a URL is returned with the same masking applied by pattern.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_userinfo_by_pattern(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        # An SSH user name ("git@") is not a credential and tells the reader which account was
        # used; anywhere else a bare user name is often a token (https://<token>@github.com).
        if parts.scheme.lower() in _SSH_SCHEMES and ":" not in userinfo:
            netloc = f"{userinfo}@{hostport}"
        else:
            netloc = f"{MASK}@{hostport}"
    redacted = SplitResult(parts.scheme, netloc, parts.path, _redact_query(parts.query), parts.fragment)
    return urlunsplit(redacted)


def _redact_userinfo_by_pattern(url: str) -> str:
    return re.sub(r"(://)[^/@\s]+@", rf"\1{MASK}@", url)


def sanitize_message(text: str) -> str:
    """Make free text safe for a status condition, an event or a log line.

    Removes PEM private key blocks, strips userinfo and sensitive query values from every URL, and
    masks ``password=…``, ``token: …`` and ``Bearer …`` style credentials.
    """
    if not text:
        return text
    text = _PEM_PRIVATE_KEY.sub(PRIVATE_KEY_MASK, text)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _JSON_PAIR.sub(_mask_json_pair, text)
    text = _KV_EQUALS.sub(_mask_pair, text)
    text = _KV_COLON.sub(_mask_pair, text)
    return _AUTH_SCHEME.sub(_mask_auth_scheme, text)


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[0] if value[:1] in ('"', "'") else ""
    return f"{match.group(1)}{match.group(2)}{quote}{MASK}{quote}"


def _mask_auth_scheme(match: re.Match[str]) -> str:
    value = match.group(3)
    looks_like_credential = len(value) >= 8 and (
        any(c.isdigit() or c in "._~+/=-" for c in value)
        or (value.lower() != value and value.upper() != value)
    )
    if not looks_like_credential and value != MASK:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _mask_json_pair(match: re.Match[str]) -> str:
    if not is_sensitive_key(match.group(1)) or not match.group(3):
        return match.group(0)
    return f'"{match.group(1)}"{match.group(2)}"{MASK}"'


def redact_value(key: str, value: Any) -> Any:
    """Return ``value`` safe to log under ``key``.

    A sensitive key masks the whole value (non-empty) whatever its type; otherwise mappings and
    sequences are walked and strings are sanitized.
    """
    if is_sensitive_key(key):
        if value is None or value == "":
            return value
        return MASK
    return redact_structure(value)


def redact_structure(value: Any) -> Any:
    """Walk mappings, lists and tuples, masking values under sensitive keys and sanitizing strings."""
    if isinstance(value, str):
        return sanitize_message(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_structure(v) for v in value]
    if isinstance(value, bytes):
        return sanitize_message(value.decode("utf-8", errors="replace"))
    return value
