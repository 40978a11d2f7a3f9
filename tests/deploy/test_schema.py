"""Built-in kinds checked against Kubernetes' own OpenAPI schema, as the official client's
generated models encode it: every required field is present (the models refuse None) and no field
is unknown (a field the models do not know is dropped on the way back, so a typo such as
`readinesProbe` shows up). CRDs are validated by the emulator when installed (test_install.py)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from libs.kustomize import build
from tests.deploy.manifests import DEPLOY, OVERLAYS, STANDALONE, built, find

pytestmark = pytest.mark.unit

API = client.ApiClient()


def model_name(obj: dict[str, Any]) -> str:
    """`apps/v1` Deployment → `V1Deployment`, `autoscaling/v2` HPA → `V2HorizontalPodAutoscaler`."""
    return obj["apiVersion"].rsplit("/", 1)[-1].capitalize() + obj["kind"]


def unknown_fields(original: Any, round_trip: Any, path: str = "") -> list[str]:
    """Paths in `original` that the model did not carry back."""
    if isinstance(original, dict):
        if not isinstance(round_trip, dict):
            return [path or "."]
        found: list[str] = []
        for key, value in original.items():
            if key not in round_trip:
                found.append(f"{path}.{key}")
            else:
                found.extend(unknown_fields(value, round_trip[key], f"{path}.{key}"))
        return found
    if isinstance(original, list):
        if not isinstance(round_trip, list) or len(original) != len(round_trip):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(original, round_trip, strict=True))
            for p in unknown_fields(a, b, f"{path}[{i}]")
        ]
    return []


def schema_problems(obj: dict[str, Any]) -> list[str]:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    try:
        model = API._ApiClient__deserialize(obj, model_name(obj))  # type: ignore[attr-defined]
    except ValueError as exc:  # a required field is missing or an enum value is wrong
        return [f"{where}: {exc}"]
    back = API.sanitize_for_serialization(model)
    return [f"{where}: unknown field {path}" for path in unknown_fields(obj, back)]


def built_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] != "CustomResourceDefinition"]


@pytest.mark.parametrize("directory", [d for d in STANDALONE if d != "crds"])
def test_built_in_objects_match_the_kubernetes_schema(directory: str) -> None:
    objects = built_in(built(directory))
    assert objects
    assert [p for obj in objects for p in schema_problems(obj)] == []


def test_the_autoscalers_match_the_kubernetes_schema(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY, tmp_path / "deploy" / "k8s")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        "resources: [../deploy/k8s/overlays/full]\ncomponents: [../deploy/k8s/components/autoscaling]\n"
    )
    hpas = find(build(mine).resources, "HorizontalPodAutoscaler")
    assert len(hpas) == 6
    assert [p for obj in hpas for p in schema_problems(obj)] == []


def test_the_schema_check_finds_missing_and_unknown_fields() -> None:
    deployment = find(built(f"overlays/{OVERLAYS[0]}"), "Deployment")[0]
    without_name = copy.deepcopy(deployment)
    del without_name["spec"]["template"]["spec"]["containers"][0]["name"]
    assert "must not be `None`" in " ".join(schema_problems(without_name))
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert schema_problems(typo) == [
        f"Deployment/{deployment['metadata']['name']}: unknown field .spec.template.spec.containers[0].readinesProbe"
    ]
