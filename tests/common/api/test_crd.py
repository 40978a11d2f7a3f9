from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema
import pytest
import yaml

from libs.common.api.crd import (
    SchemaError,
    crd_documents,
    crd_for,
    file_name,
    openapi_schema,
    render_crd_files,
)
from libs.common.api.meta import FluxModel, FluxObject, IntOrString, JSONObject, LocalObjectReference
from libs.common.api.registry import ALL_KINDS
from tests.common.api.manifests import MANIFESTS

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "title",
    "const",
    "additionalItems",
}


@pytest.fixture(scope="module")
def crds() -> list[dict[str, Any]]:
    return crd_documents()


def _structural_problems(node: Any, path: str, *, root: bool = False) -> list[str]:
    """Problems that make a schema non-structural in the Kubernetes sense (plus our stricter rules)."""
    problems: list[str] = []
    if not isinstance(node, dict):
        return [f"{path}: not a mapping"]
    for key in FORBIDDEN & node.keys():
        problems.append(f"{path}: forbidden keyword {key}")
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if node.get("type") not in (None, "object", "array", "string", "integer", "number", "boolean"):
        problems.append(f"{path}: bad type {node.get('type')!r}")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    if "default" in node and node["default"] is None:
        problems.append(f"{path}: null default")
    for required in node.get("required", []):
        if required not in node.get("properties", {}):
            problems.append(f"{path}: required {required!r} is not a property")
    for name, child in node.get("properties", {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    if "items" in node:
        problems += _structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _structural_problems(node["additionalProperties"], f"{path}{{}}")
    if root and node.get("properties", {}).get("metadata") != {"type": "object"}:
        problems.append(f"{path}: metadata must be exactly {{type: object}}")
    return problems


def _strip_extensions(node: Any) -> Any:
    """The schema without Kubernetes `x-` extensions, for plain JSON Schema validation."""
    if isinstance(node, dict):
        return {k: _strip_extensions(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_extensions(v) for v in node]
    return node


def _schema(crds: list[dict[str, Any]], api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    for crd in crds:
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            for entry in crd["spec"]["versions"]:
                if entry["name"] == version:
                    schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
                    return schema
    raise KeyError((api_version, kind))


def test_one_crd_per_kind_with_flux_names(crds: list[dict[str, Any]]) -> None:
    assert len(crds) == 13
    by_name = {crd["metadata"]["name"]: crd for crd in crds}
    git = by_name["gitrepositories.source.toolkit.fluxcd.io"]
    assert git["apiVersion"] == "apiextensions.k8s.io/v1"
    assert git["kind"] == "CustomResourceDefinition"
    assert git["spec"]["scope"] == "Namespaced"
    assert git["spec"]["names"] == {
        "categories": ["all", "fluxcd", "fluxcd-sources"],
        "kind": "GitRepository",
        "listKind": "GitRepositoryList",
        "plural": "gitrepositories",
        "shortNames": ["gitrepo"],
        "singular": "gitrepository",
    }
    (version,) = git["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["URL", "Age", "Ready", "Status"]
    assert (
        version["additionalPrinterColumns"][2]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    )

    policy = by_name["imagepolicies.image.toolkit.fluxcd.io"]
    assert [(v["name"], v["storage"]) for v in policy["spec"]["versions"]] == [
        ("v1", True),
        ("v1beta2", False),
    ]
    assert policy["spec"]["conversion"] == {"strategy": "None"}
    assert (
        "latestImage"
        in policy["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    )

    provider = by_name["providers.notification.toolkit.fluxcd.io"]
    assert "subresources" not in provider["spec"]["versions"][0]
    assert "status" not in provider["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: f"{c.KIND}-{c.VERSION}")
def test_every_schema_is_structural(crds: list[dict[str, Any]], cls: type) -> None:
    schema = _schema(crds, cls.api_version(), cls.KIND)  # type: ignore[attr-defined]
    assert _structural_problems(schema, "openAPIV3Schema", root=True) == []


def test_schemas_keep_flux_defaults_patterns_and_free_form_json(crds: list[dict[str, Any]]) -> None:
    git = _schema(crds, "source.toolkit.fluxcd.io/v1", "GitRepository")
    spec = git["properties"]["spec"]
    assert spec["properties"]["timeout"]["default"] == "60s"
    assert spec["properties"]["url"]["pattern"] == "^(http|https|ssh|file)://.*$"
    assert spec["properties"]["interval"]["pattern"] == "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
    assert sorted(spec["required"]) == ["interval", "url"]
    assert git["properties"]["status"]["default"] == {"observedGeneration": -1}
    assert spec["properties"]["ref"]["properties"]["branch"] == {"type": "string"}

    ks = _schema(crds, "kustomize.toolkit.fluxcd.io/v1", "Kustomization")["properties"]["spec"]
    assert "prune" in ks["required"]
    assert ks["properties"]["sourceRef"]["properties"]["kind"]["enum"] == [
        "OCIRepository",
        "GitRepository",
        "Bucket",
        "ExternalArtifact",
    ]

    hr = _schema(crds, "helm.toolkit.fluxcd.io/v2", "HelmRelease")["properties"]["spec"]
    assert hr["properties"]["values"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert "disableOpenAPIValidation" in hr["properties"]["install"]["properties"]

    repo = _schema(crds, "image.toolkit.fluxcd.io/v1", "ImageRepository")["properties"]["spec"]
    assert repo["properties"]["exclusionList"]["default"] == ["^.*\\.sig$"]
    assert repo["properties"]["exclusionList"]["maxItems"] == 25

    iua = _schema(crds, "image.toolkit.fluxcd.io/v1beta2", "ImageUpdateAutomation")["properties"]["spec"]
    assert iua["properties"]["update"]["default"] == {"strategy": "Setters"}
    source_kind = iua["properties"]["sourceRef"]["properties"]["kind"]
    assert (source_kind["enum"], source_kind["default"], source_kind["type"]) == (
        ["GitRepository"],
        "GitRepository",
        "string",
    )

    alert = _schema(crds, "notification.toolkit.fluxcd.io/v1beta3", "Alert")["properties"]["spec"]
    assert alert["properties"]["eventSeverity"]["default"] == "info"
    receiver = _schema(crds, "notification.toolkit.fluxcd.io/v1", "Receiver")["properties"]["spec"]
    assert receiver["properties"]["interval"]["default"] == "10m"


@pytest.mark.parametrize("doc", MANIFESTS, ids=lambda d: f"{d['kind']}-{d['apiVersion'].rsplit('/', 1)[1]}")
def test_example_manifests_validate_against_the_generated_schema(
    crds: list[dict[str, Any]], doc: dict[str, Any]
) -> None:
    schema = _strip_extensions(_schema(crds, doc["apiVersion"], doc["kind"]))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(doc, schema)


def test_generated_schema_rejects_what_flux_rejects(crds: list[dict[str, Any]]) -> None:
    doc = next(d for d in MANIFESTS if d["kind"] == "GitRepository")
    schema = _strip_extensions(_schema(crds, doc["apiVersion"], doc["kind"]))
    bad = {**doc, "spec": {**doc["spec"], "url": "git@github.com:org/repo"}}
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(bad, schema)


def test_rendering_is_deterministic_and_named_like_flux() -> None:
    first = render_crd_files()
    second = render_crd_files()
    assert first == second
    assert "source.toolkit.fluxcd.io_gitrepositories.yaml" in first
    assert "image.toolkit.fluxcd.io_imageupdateautomations.yaml" in first
    kustomization = yaml.safe_load(first["kustomization.yaml"])
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == sorted(name for name in first if name != "kustomization.yaml")
    for name, text in first.items():
        assert "&id" not in text and "*id" not in text, f"{name} uses YAML aliases"
        if name != "kustomization.yaml":
            (doc,) = [d for d in yaml.safe_load_all(text) if d]
            assert file_name(doc) == name


def test_committed_crd_files_are_up_to_date() -> None:
    directory = REPO_ROOT / "deploy" / "k8s" / "crds"
    rendered = render_crd_files()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in directory.glob("*.yaml")}
    assert on_disk == rendered, "deploy/k8s/crds drifted: run `python -m libs.common.api.crd`"


def test_cross_field_rules_are_carried_as_cel_validations(crds: list[dict[str, Any]]) -> None:
    git = _schema(crds, "source.toolkit.fluxcd.io/v1", "GitRepository")["properties"]["spec"]
    (rule,) = git["x-kubernetes-validations"]
    assert rule["message"] == "serviceAccountName can only be set when provider is 'azure' or 'aws'"
    bucket = _schema(crds, "source.toolkit.fluxcd.io/v1", "Bucket")["properties"]["spec"]
    assert len(bucket["x-kubernetes-validations"]) == 7
    hr = _schema(crds, "helm.toolkit.fluxcd.io/v2", "HelmRelease")["properties"]["spec"]
    assert hr["x-kubernetes-validations"][0]["message"] == "either chart or chartRef must be set"
    assert "x-kubernetes-validations" in hr["properties"]["kubeConfig"]
    for version in ("v1", "v1beta2"):
        policy = _schema(crds, f"image.toolkit.fluxcd.io/{version}", "ImagePolicy")["properties"]["spec"]
        assert len(policy["x-kubernetes-validations"]) == 2


def test_crds_carry_flux_annotations() -> None:
    by_name = {crd["metadata"]["name"]: crd for crd in crd_documents()}
    for name in (
        "gitrepositories.source.toolkit.fluxcd.io",
        "ocirepositories.source.toolkit.fluxcd.io",
        "helmrepositories.source.toolkit.fluxcd.io",
        "imageupdateautomations.image.toolkit.fluxcd.io",
    ):
        assert by_name[name]["metadata"]["annotations"] == {
            "kustomize.toolkit.fluxcd.io/substitute": "disabled"
        }


def _defaults(node: dict[str, Any], path: str) -> list[tuple[str, Any, dict[str, Any]]]:
    found: list[tuple[str, Any, dict[str, Any]]] = []
    if "default" in node:
        found.append((path, node["default"], node))
    for name, child in node.get("properties", {}).items():
        found += _defaults(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _defaults(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: f"{c.KIND}-{c.VERSION}")
def test_every_default_validates_against_its_own_schema(crds: list[dict[str, Any]], cls: type) -> None:
    schema = _schema(crds, cls.api_version(), cls.KIND)  # type: ignore[attr-defined]
    for path, default, node in _defaults(schema, "openAPIV3Schema"):
        try:
            jsonschema.validate(default, _strip_extensions(node))
        except jsonschema.ValidationError as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{path}: default {default!r} is invalid: {exc.message}")


def test_rendered_yaml_is_exactly_the_crd_documents(crds: list[dict[str, Any]]) -> None:
    files = render_crd_files()
    for crd in crds:
        text = files[file_name(crd)]
        assert text.startswith("# Generated from libs/common/api")
        (loaded,) = [d for d in yaml.safe_load_all(text) if d]
        assert loaded == crd


class _ExampleSpec(FluxModel):
    port: IntOrString
    """Either a number or a named port."""
    values: JSONObject | None = None
    mode: Literal["a", "b"] = "a"
    fixed: Literal["only"] = "only"
    labels: dict[str, str] | None = None
    items: list[LocalObjectReference] | None = None


class _Example(FluxObject):
    """An example kind."""

    GROUP: ClassVar[str] = "example.sluice.dev"
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Example"
    PLURAL: ClassVar[str] = "examples"
    SINGULAR: ClassVar[str] = "example"

    spec: _ExampleSpec


class _BadSpec(FluxModel):
    either: int | str


class _Bad(FluxObject):
    GROUP: ClassVar[str] = "example.sluice.dev"
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Bad"
    PLURAL: ClassVar[str] = "bads"
    SINGULAR: ClassVar[str] = "bad"

    spec: _BadSpec


def test_schema_conversion_of_special_types() -> None:
    schema = openapi_schema(_Example)
    assert schema["description"] == "An example kind."
    assert schema["properties"]["metadata"] == {"type": "object"}
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["port"]
    assert spec["properties"]["port"] == {
        "description": "Either a number or a named port.",
        "x-kubernetes-int-or-string": True,
    }
    assert spec["properties"]["values"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["properties"]["mode"] == {"default": "a", "enum": ["a", "b"], "type": "string"}
    assert spec["properties"]["fixed"]["enum"] == ["only"]
    assert "const" not in spec["properties"]["fixed"]
    assert spec["properties"]["labels"] == {"additionalProperties": {"type": "string"}, "type": "object"}
    assert spec["properties"]["items"]["items"]["required"] == ["name"]
    assert _structural_problems(schema, "openAPIV3Schema", root=True) == []


def test_schema_conversion_refuses_non_structural_unions() -> None:
    with pytest.raises(SchemaError, match=r"Bad\.spec\.either: anyOf with 2 non-null options"):
        openapi_schema(_Bad)


def test_crd_for_requires_one_storage_version() -> None:
    crd = crd_for([_Example])
    assert crd["metadata"]["name"] == "examples.example.sluice.dev"
    assert "shortNames" not in crd["spec"]["names"]
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}

    class _ExampleV2(_Example):
        VERSION: ClassVar[str] = "v2"

    with pytest.raises(SchemaError, match="exactly one storage version"):
        crd_for([_Example, _ExampleV2])
