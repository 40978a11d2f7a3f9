"""Settings read from the environment: defaults, parsing, subclass fields, errors that name the variable."""

from __future__ import annotations

import os
import socket

import pytest
from pydantic import Field, SecretStr, ValidationError, field_validator

from libs.common.runtime.settings import (
    Settings,
    SettingsError,
    describe_settings,
    parse_host_port,
    settings_markdown,
)

pytestmark = pytest.mark.unit


class SourceSettings(Settings):
    service_name: str = Field("sluice-source", description="Name in logs, traces and metrics.")
    git_timeout: float = Field(60.0, gt=0, description="Seconds allowed for one git operation.")
    allowed_hosts: list[str] = Field(default_factory=list, description="Hosts sources may fetch from.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels.")
    verbose: bool = Field(False, description="Chatty logs.")
    webhook_token: SecretStr = Field(SecretStr(""), description="Shared secret for webhooks.")
    s3_secret_key: str = Field("", description="S3 secret key.", json_schema_extra={"secret": True})


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.kubeconfig == ""
    assert settings.http_addr == "0.0.0.0:8080"
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
    assert settings.log_level == "info"
    assert settings.log_format == "json"
    assert settings.stream == "SLUICE"
    assert settings.artifact_store == "file:///var/lib/sluice/artifacts"
    assert settings.artifact_base_url == ""
    assert settings.watch_namespace == ""
    assert settings.concurrency == 4
    assert settings.interval_jitter == 0.05
    assert settings.otel_exporter == "none"
    assert settings.shutdown_grace == 25.0
    assert settings.replica_id == f"{socket.gethostname()}-{os.getpid()}"


def test_values_are_parsed_to_their_types() -> None:
    settings = Settings.from_env(
        {
            "SLUICE_NATS_URL": "nats://a:4222, nats://b:4222",
            "SLUICE_HTTP_ADDR": "127.0.0.1:0",
            "SLUICE_LOG_LEVEL": "WARN",
            "SLUICE_LOG_FORMAT": "text",
            "SLUICE_CONCURRENCY": "16",
            "SLUICE_INTERVAL_JITTER": "0.2",
            "SLUICE_OTEL_EXPORTER": "file:/tmp/spans.jsonl",
            "SLUICE_SHUTDOWN_GRACE": "2.5",
            "SLUICE_WATCH_NAMESPACE": "flux-system",
            "SLUICE_ARTIFACT_BASE_URL": "http://source.sluice:8080/",
            "SLUICE_REPLICA_ID": "source-0",
        }
    )
    assert settings.nats_servers == ["nats://a:4222", "nats://b:4222"]
    assert settings.http_port == 0
    assert settings.log_level == "warning"
    assert settings.log_format == "text"
    assert settings.concurrency == 16
    assert settings.interval_jitter == 0.2
    assert settings.otel_exporter == "file:/tmp/spans.jsonl"
    assert settings.shutdown_grace == 2.5
    assert settings.watch_namespace == "flux-system"
    assert settings.artifact_base_url == "http://source.sluice:8080"
    assert settings.replica_id == "source-0"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValidationError):
        settings.concurrency = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ""),
        ({"KUBECONFIG": "/home/u/.kube/config"}, "/home/u/.kube/config"),
        ({"KUBECONFIG": "/a", "SLUICE_KUBECONFIG": "/b"}, "/b"),
        ({"KUBECONFIG": "/a", "SLUICE_KUBECONFIG": ""}, "/a"),
    ],
)
def test_kubeconfig_falls_back_to_the_conventional_variable(environ: dict[str, str], expected: str) -> None:
    assert Settings.from_env(environ).kubeconfig == expected


def test_an_empty_variable_means_the_default() -> None:
    assert Settings.from_env({"SLUICE_CONCURRENCY": ""}).concurrency == 4


def test_subclass_fields_are_read_the_same_way() -> None:
    settings = SourceSettings.from_env(
        {
            "SLUICE_GIT_TIMEOUT": "5",
            "SLUICE_ALLOWED_HOSTS": "github.com, gitlab.com",
            "SLUICE_LABELS": '{"team": "platform"}',
            "SLUICE_VERBOSE": "true",
            "SLUICE_WEBHOOK_TOKEN": "s3cr3t-token",
        }
    )
    assert settings.service_name == "sluice-source"
    assert settings.git_timeout == 5.0
    assert settings.allowed_hosts == ["github.com", "gitlab.com"]
    assert settings.labels == {"team": "platform"}
    assert settings.verbose is True
    assert settings.webhook_token.get_secret_value() == "s3cr3t-token"
    assert SourceSettings.from_env({"SLUICE_ALLOWED_HOSTS": '["a", "b"]'}).allowed_hosts == ["a", "b"]


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_CONCURRENCY", "7")
    assert Settings.from_env().concurrency == 7


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SLUICE_CONCURRENCY", "lots", "valid integer"),
        ("SLUICE_CONCURRENCY", "0", "greater than or equal to 1"),
        ("SLUICE_INTERVAL_JITTER", "1.5", "less than 1"),
        ("SLUICE_HTTP_ADDR", "localhost", "host:port"),
        ("SLUICE_HTTP_ADDR", "127.0.0.1:70000", "port"),
        ("SLUICE_LOG_LEVEL", "loud", "debug, info"),
        ("SLUICE_LOG_FORMAT", "xml", "'json' or 'text'"),
        ("SLUICE_NATS_URL", "http://nats:4222", "nats://"),
        ("SLUICE_OTEL_EXPORTER", "jaeger", "file:PATH"),
        ("SLUICE_ARTIFACT_STORE", "/var/lib/x", "URL"),
        ("SLUICE_SHUTDOWN_GRACE", "-1", "greater than or equal to 0"),
        ("SLUICE_STREAM", "has space", "pattern"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert variable in caught.value.problems
    assert reason in caught.value.problems[variable]
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SLUICE_CONCURRENCY": "x", "SLUICE_LOG_FORMAT": "xml"})
    assert set(caught.value.problems) == {"SLUICE_CONCURRENCY", "SLUICE_LOG_FORMAT"}


def test_bad_json_for_a_list_names_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        SourceSettings.from_env({"SLUICE_ALLOWED_HOSTS": "[not json"})
    assert "not valid JSON" in caught.value.problems["SLUICE_ALLOWED_HOSTS"]


def test_secret_values_never_appear_in_errors() -> None:
    class Strict(Settings):
        api_token: SecretStr = Field(SecretStr(""), min_length=40, description="Token.")
        db_password: str = Field("", pattern=r"^\d+$", json_schema_extra={"secret": True})

    with pytest.raises(SettingsError) as caught:
        Strict.from_env({"SLUICE_API_TOKEN": "tok-short-123", "SLUICE_DB_PASSWORD": "hunter2"})
    error = caught.value
    assert set(error.problems) == {"SLUICE_API_TOKEN", "SLUICE_DB_PASSWORD"}
    rendered = f"{error} {error!r} {error.problems} {error.__cause__!r} {error.__context__!r}"
    assert "tok-short-123" not in rendered
    assert "hunter2" not in rendered
    # The pydantic error (which quotes the input) is not chained onto ours.
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_url_credentials_in_a_bad_value_are_masked() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SLUICE_NATS_URL": "http://admin:pa55@nats:4222"})
    assert "pa55" not in str(caught.value)
    assert "http://***@nats:4222" in str(caught.value)


def test_redacted_view_masks_secrets_and_url_credentials() -> None:
    settings = SourceSettings.from_env(
        {
            "SLUICE_WEBHOOK_TOKEN": "abc",
            "SLUICE_S3_SECRET_KEY": "xyz",
            "SLUICE_NATS_URL": "nats://user:pw@nats:4222",
        }
    )
    view = settings.redacted()
    assert view["webhook_token"] == "***"
    assert view["s3_secret_key"] == "***"
    assert view["nats_url"] == "nats://***@nats:4222"
    assert view["concurrency"] == 4
    assert "abc" not in str(view) and "xyz" not in str(view) and "pw@" not in str(view)


def test_describe_settings_lists_every_variable() -> None:
    docs = {doc.env: doc for doc in describe_settings(SourceSettings)}
    assert docs["SLUICE_CONCURRENCY"].type == "int"
    assert docs["SLUICE_CONCURRENCY"].default == "4"
    assert docs["SLUICE_LOG_FORMAT"].type == "json|text"
    assert docs["SLUICE_KUBECONFIG / KUBECONFIG"].default == ""
    assert docs["SLUICE_REPLICA_ID"].default == "<hostname>-<pid>"
    assert docs["SLUICE_GIT_TIMEOUT"].description == "Seconds allowed for one git operation."
    assert docs["SLUICE_ALLOWED_HOSTS"].type == "list[str]"
    assert docs["SLUICE_WEBHOOK_TOKEN"].secret and docs["SLUICE_WEBHOOK_TOKEN"].type == "secret"
    assert docs["SLUICE_S3_SECRET_KEY"].secret
    assert all(doc.description for doc in describe_settings(Settings))
    table = settings_markdown(SourceSettings)
    assert "| `SLUICE_LOG_FORMAT` | json\\|text | `json` |" in table


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9090", ("0.0.0.0", 9090)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(addr) == expected


def test_a_service_validator_quoting_a_secret_is_masked() -> None:
    class WithCheck(Settings):
        signing_key: SecretStr = Field(SecretStr(""), description="Key.")

        @field_validator("signing_key")
        @classmethod
        def _long_enough(cls, value: SecretStr) -> SecretStr:
            if len(value) < 16:
                raise ValueError(f"key {value.get_secret_value()} is too short")
            return value

    with pytest.raises(SettingsError) as caught:
        WithCheck.from_env({"SLUICE_SIGNING_KEY": "abc123"})
    assert caught.value.problems == {"SLUICE_SIGNING_KEY": "key *** is too short"}


def test_unknown_sluice_variables_are_listed() -> None:
    environ = {"SLUICE_CONCURENCY": "8", "SLUICE_CONCURRENCY": "8", "KUBECONFIG": "/k", "HOME": "/root"}
    assert Settings.unknown_env(environ) == ["SLUICE_CONCURENCY"]
    assert SourceSettings.unknown_env({"SLUICE_GIT_TIMEOUT": "1"}) == []


def test_nats_credentials_are_read_and_the_password_never_shown() -> None:
    settings = Settings.from_env({"SLUICE_NATS_USER": "source", "SLUICE_NATS_PASSWORD": "s3cr3t-pw"})
    assert settings.nats_user == "source"
    assert settings.nats_password.get_secret_value() == "s3cr3t-pw"
    view = settings.redacted()
    assert view["nats_user"] == "source"
    assert view["nats_password"] == "***"
    assert "s3cr3t-pw" not in repr(settings) + str(view)
