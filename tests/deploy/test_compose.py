"""compose.yaml is a valid Compose file (the compose specification's own JSON Schema) that runs
NATS, MinIO, a registry and the six services with health checks, in a start order that works."""

from __future__ import annotations

import importlib.resources
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.manifests import COMPONENTS, DEPLOY, ROOT

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "compose.yaml"
INFRASTRUCTURE = ("nats", "minio", "registry")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves anchors and << merges
    return loaded


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema vendored by check-jsonschema (no network here)."""
    path = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """depends_on in either form, as {service: condition}."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def test_compose_file_matches_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_schema_check_catches_mistakes() -> None:
    schema = compose_schema()
    broken = compose()
    broken["services"]["nats"]["healthcheck"]["retries"] = "ten"
    broken["services"]["source"]["depends_on"] = {"nats": {"condition": "when_it_feels_like_it"}}
    assert len(list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))) >= 2


def test_the_whole_system_is_there() -> None:
    services = compose()["services"]
    assert set(INFRASTRUCTURE) | set(COMPONENTS) <= set(services)
    assert "-js" in services["nats"]["command"] or "jetstream" in (DEPLOY / "nats" / "nats.conf").read_text()
    assert services["nats"]["image"] == "nats:2.10-alpine"


def test_dependencies_name_services_and_health_checks_gate_them() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in dependencies(service).items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            target = services[dependency]
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency}'s health, which has no check"
            if condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is a one-shot and must not restart"
        one_shot = service.get("restart") == "no"
        assert one_shot or "healthcheck" in service, f"{name} has no health check"


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_sluice_service_is_built_from_its_dockerfile_and_checked_on_readyz(component: str) -> None:
    service = compose()["services"][component]
    build = service["build"]
    assert (ROOT / build.get("context", ".") / build["dockerfile"]).is_file()
    assert build["dockerfile"] == f"services/{component.replace('-', '_')}/Dockerfile"
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert dependencies(service).get("nats") == "service_healthy"
    env = service["environment"]
    assert env["SLUICE_NATS_URL"] == "nats://nats:4222"
    assert env["SLUICE_NATS_USER"] == component
    assert service["user"] == "65532:65532" and service["read_only"] is True


def test_services_use_the_nats_users_the_server_defines() -> None:
    """The NATS container runs deploy/k8s/nats/nats.conf; every service's password default is the
    one the server is given for that user."""
    services = compose()["services"]
    nats = services["nats"]
    assert "./deploy/k8s/nats/nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    server_env = nats["environment"]
    for component in COMPONENTS:
        variable = "NATS_PASSWORD_" + component.upper().replace("-", "_")
        assert server_env[variable] == services[component]["environment"]["SLUICE_NATS_PASSWORD"]


def test_store_users_reach_minio_after_the_bucket_exists() -> None:
    services = compose()["services"]
    for component in ("source", "build", "image-scan"):
        env = services[component]["environment"]
        assert env["SLUICE_ARTIFACT_STORE"].startswith("s3://sluice-artifacts?endpoint=http://minio:9000")
        assert dependencies(services[component]).get("minio-init") == "service_completed_successfully"
    bucket = re.search(r"local/([\w-]+)", services["minio-init"]["command"][0])
    assert bucket and bucket.group(1) == "sluice-artifacts"
