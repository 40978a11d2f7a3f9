"""Service configuration: one typed, frozen settings object per service, read from the environment.

Every field ``foo_bar`` of a ``Settings`` class is read from the variable ``SLUICE_FOO_BAR``.
Values are parsed by pydantic (``"4"`` → ``4``, ``"true"`` → ``True``); list fields take a
comma-separated value or a JSON array, dict fields a JSON object. An unset or empty variable means
"use the default". A bad value raises ``SettingsError`` naming the variable; values of secret
fields are never repeated in errors, logs or ``describe_settings``.

A service adds its own fields by subclassing, with a description for the generated docs::

    class SourceSettings(Settings):
        service_name: str = Field("sluice-source", description="Name in logs, traces and metrics.")
        git_timeout: float = Field(60.0, gt=0, description="Seconds allowed for one git operation.")
        webhook_token: SecretStr = Field(SecretStr(""), description="Shared secret for /hook.")

    settings = SourceSettings.from_env()          # reads SLUICE_GIT_TIMEOUT, SLUICE_WEBHOOK_TOKEN …

Extra knobs on a field go in ``json_schema_extra``:

- ``{"secret": True}`` — never echo the value (``SecretStr`` fields are secret automatically);
- ``{"env": "NAME"}`` — read ``NAME`` instead of ``SLUICE_<FIELD>``;
- ``{"env_fallback": ["NAME", …]}`` — variables tried, in order, when the main one is unset
  (``kubeconfig`` reads ``SLUICE_KUBECONFIG``, then the conventional ``KUBECONFIG``).

``describe_settings(SourceSettings)`` lists every variable with its type, default and description.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretBytes, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo

from libs.common.runtime.redact import MASK, redact_url, sanitize_message

ENV_PREFIX = "SLUICE_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    """Configuration from the environment is invalid. ``problems`` maps variable → reason."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"{env}: {reason}" for env, reason in self.problems.items()]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class SettingDoc:
    """One environment variable of a settings class, for generated documentation."""

    env: str
    type: str
    default: str
    description: str
    secret: bool = False


def default_replica_id() -> str:
    """``<hostname>-<pid>``: unique per process, stable for the life of the process."""
    return f"{socket.gethostname()}-{os.getpid()}"


def parse_host_port(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``, ``:port`` = all interfaces) into host and port."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("expected host:port, e.g. 0.0.0.0:8080 (port 0 picks a free port)")
    port = int(port_text)
    if port > 65535:
        raise ValueError("port must be between 0 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif not host:
        host = "0.0.0.0"
    elif ":" in host:
        raise ValueError("IPv6 hosts must be in brackets, e.g. [::1]:8080")
    return host, port


class Settings(BaseModel):
    """Settings every Sluice service shares. Subclass to add a service's own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    service_name: str = Field(
        "sluice", min_length=1, description="Service name used in logs, metrics and trace resources."
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server URL(s), comma-separated (nats://, tls://, ws://, wss://).",
    )
    nats_user: str = Field("", description="NATS user name (empty = no user/password authentication).")
    nats_password: SecretStr = Field(
        SecretStr(""), description="NATS password of `SLUICE_NATS_USER`; never logged."
    )
    stream: str = Field(
        "SLUICE", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream that carries Sluice events."
    )
    kubeconfig: str = Field(
        "",
        description="Path to a kubeconfig file; empty means in-cluster configuration.",
        json_schema_extra={"env_fallback": ["KUBECONFIG"]},
    )
    watch_namespace: str = Field("", description="Only reconcile objects in this namespace; empty = all.")
    http_addr: str = Field(
        "0.0.0.0:8080",
        description="host:port of the HTTP server for /healthz, /readyz and /metrics (port 0 = any free port).",
    )
    log_level: str = Field("info", description="Lowest log level written: debug, info, warning, error.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format: json or text.")
    artifact_store: str = Field(
        "file:///var/lib/sluice/artifacts",
        description=(
            "Where artifacts are stored: file:///path, or s3://bucket?endpoint=http://host:port&region=…"
            " (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."
        ),
    )
    artifact_base_url: str = Field(
        "", description="Public base URL artifacts are served from; empty = this service's HTTP address."
    )
    concurrency: int = Field(4, ge=1, le=1024, description="Reconciles run in parallel (across objects).")
    interval_jitter: float = Field(
        0.05, ge=0.0, lt=1.0, description="Random fraction added to or taken from each object's interval."
    )
    otel_exporter: str = Field(
        "none", description="Trace exporter: none, console, otlp or file:PATH (one JSON span per line)."
    )
    shutdown_grace: float = Field(
        25.0, ge=0.0, description="Seconds in-flight work may take to finish after SIGTERM."
    )
    replica_id: str = Field(
        default_factory=default_replica_id,
        min_length=1,
        description="Identity of this replica (default hostname-pid).",
    )

    @field_validator("http_addr")
    @classmethod
    def _check_http_addr(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level == "warn":
            level = "warning"
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("nats_url")
    @classmethod
    def _check_nats_url(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one server URL is required")
        for server in servers:
            scheme, sep, rest = server.partition("://")
            if not sep or scheme not in ("nats", "tls", "ws", "wss") or not rest:
                raise ValueError("each server must look like nats://host:port (or tls://, ws://, wss://)")
        return ",".join(servers)

    @field_validator("artifact_store")
    @classmethod
    def _check_artifact_store(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or not scheme or not rest:
            raise ValueError(
                "must be a URL such as file:///var/lib/sluice/artifacts or s3://bucket?endpoint=http://minio:9000"
            )
        return value

    @field_validator("artifact_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("otel_exporter")
    @classmethod
    def _check_otel_exporter(cls, value: str) -> str:
        if value in ("none", "console", "otlp"):
            return value
        if value.startswith("file:") and len(value) > len("file:"):
            return value
        raise ValueError("must be none, console, otlp or file:PATH")

    # -- derived values -------------------------------------------------------------------------

    @property
    def http_host(self) -> str:
        return parse_host_port(self.http_addr)[0]

    @property
    def http_port(self) -> int:
        return parse_host_port(self.http_addr)[1]

    @property
    def nats_servers(self) -> list[str]:
        return self.nats_url.split(",")

    # -- reading the environment ----------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Build the settings from ``environ`` (default ``os.environ``); raise ``SettingsError``."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        problems: dict[str, str] = {}
        sources: dict[str, str] = {}
        raw_values: dict[str, str] = {}
        for name, info in cls.model_fields.items():
            for var in env_names(name, info):
                value = env.get(var)
                if value is None or value == "":
                    continue
                sources[name] = var
                raw_values[name] = value
                try:
                    raw[name] = _decode(value, info)
                except ValueError as exc:
                    problems[var] = str(exc)
                break
        if not problems:
            try:
                return cls.model_validate(raw)
            except ValidationError as exc:
                problems = _describe_errors(cls, exc, sources, raw_values)
        raise SettingsError(problems) from None

    @classmethod
    def unknown_env(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """``SLUICE_*`` variables in ``environ`` that no field reads (usually typos), sorted."""
        env = os.environ if environ is None else environ
        known = {var for name, info in cls.model_fields.items() for var in env_names(name, info)}
        return sorted(var for var in env if var.startswith(ENV_PREFIX) and var not in known)

    def redacted(self) -> dict[str, Any]:
        """The effective values, secrets masked and URL credentials stripped: safe to log."""
        fields = type(self).model_fields
        out: dict[str, Any] = {}
        for name, info in fields.items():
            value = getattr(self, name)
            if is_secret(info):
                out[name] = MASK if _secret_is_set(value) else ""
            elif isinstance(value, str) and "://" in value:
                out[name] = ",".join(redact_url(part) for part in value.split(","))
            else:
                out[name] = value
        return out


def env_names(field_name: str, info: FieldInfo) -> list[str]:
    """The variables a field is read from, in order of precedence."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    primary = extra.get("env")
    names = [primary if isinstance(primary, str) else ENV_PREFIX + field_name.upper()]
    fallback = extra.get("env_fallback")
    if isinstance(fallback, list):
        names.extend(str(name) for name in fallback)
    return names


def is_secret(info: FieldInfo) -> bool:
    """A field is secret when it says so in ``json_schema_extra`` or is a ``SecretStr``/``SecretBytes``."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("secret") is True:
        return True
    return any(arg in (SecretStr, SecretBytes) for arg in _flatten(info.annotation))


def _secret_is_set(value: Any) -> bool:
    if isinstance(value, SecretStr | SecretBytes):
        return len(value) > 0
    return value not in (None, "", b"")


def _flatten(annotation: Any) -> list[Any]:
    """The annotation itself and, for unions/Optional/Annotated, its arguments."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _flatten(arg)]
    return [annotation]


def _container_kind(info: FieldInfo) -> str | None:
    for candidate in _flatten(info.annotation):
        origin = typing.get_origin(candidate) or candidate
        if origin in (list, tuple, set, frozenset):
            return "list"
        if origin in (dict, Mapping):
            return "dict"
    return None


def _decode(value: str, info: FieldInfo) -> Any:
    kind = _container_kind(info)
    if kind is None:
        return value
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if kind == "dict":
        raise ValueError('expected a JSON object, e.g. {"key": "value"}')
    return [item.strip() for item in text.split(",") if item.strip()]


def _describe_errors(
    cls: type[Settings], exc: ValidationError, sources: Mapping[str, str], raw_values: Mapping[str, str]
) -> dict[str, str]:
    problems: dict[str, str] = {}
    fields = cls.model_fields
    for error in exc.errors(include_url=False, include_input=False):
        loc = error.get("loc", ())
        name = str(loc[0]) if loc else ""
        info = fields.get(name)
        if info is None:
            # A model-level validator: it may quote any value, so mask every secret one.
            reason = _mask_secrets(
                cls, sanitize_message(error["msg"].removeprefix("Value error, ")), raw_values
            )
            problems[ENV_PREFIX + "*"] = reason
            continue
        var = sources.get(name, env_names(name, info)[0])
        reason = error["msg"].removeprefix("Value error, ")
        if len(loc) > 1:
            reason = f"item {'.'.join(str(part) for part in loc[1:])}: {reason}"
        if name in sources and is_secret(info):
            # A service's own validator might quote the value it rejects.
            reason = _mask_secrets(cls, reason, raw_values)
        elif name in sources:
            reason += f" (got {_shown_value(raw_values[name])})"
        problems[var] = problems[var] + "; " + reason if var in problems else reason
    return problems


def _mask_secrets(cls: type[Settings], text: str, raw_values: Mapping[str, str]) -> str:
    for name, info in cls.model_fields.items():
        raw = raw_values.get(name)
        if raw and is_secret(info):
            text = text.replace(raw, MASK)
    return text


def _shown_value(raw: str) -> str:
    text = sanitize_message(raw)
    if len(text) > 80:
        text = text[:77] + "..."
    return repr(text)


def describe_settings(cls: type[Settings]) -> list[SettingDoc]:
    """One ``SettingDoc`` per field of ``cls``, in declaration order, for generated documentation."""
    docs: list[SettingDoc] = []
    for name, info in cls.model_fields.items():
        secret = is_secret(info)
        docs.append(
            SettingDoc(
                env=" / ".join(env_names(name, info)),
                type=_type_name(info.annotation),
                default=_default_text(info, secret),
                description=info.description or "",
                secret=secret,
            )
        )
    return docs


def settings_markdown(cls: type[Settings]) -> str:
    """A Markdown table of ``describe_settings(cls)``."""
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for doc in describe_settings(cls):
        default = f"`{doc.default}`" if doc.default else "(empty)"
        cells = (f"`{doc.env}`", doc.type, default, doc.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation in (SecretStr, SecretBytes):
        return "secret"
    if annotation is type(None):
        return "None"
    return str(getattr(annotation, "__name__", annotation))


def _default_text(info: FieldInfo, secret: bool) -> str:
    if info.default_factory is default_replica_id:
        return "<hostname>-<pid>"
    default = info.get_default(call_default_factory=True)
    if secret:
        return MASK if _secret_is_set(default) else ""
    if default is None:
        return ""
    if isinstance(default, list | tuple | set | frozenset):
        return ",".join(str(item) for item in default)
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)
