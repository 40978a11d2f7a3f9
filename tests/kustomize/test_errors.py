"""Failures name the file or field and the problem; unsupported features are never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.kustomize import KustomizeError, build

pytestmark = pytest.mark.unit

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.mark.parametrize(
    "field",
    [
        "helmCharts",
        "helmGlobals",
        "generators",
        "transformers",
        "validators",
        "openapi",
        "vars",
    ],
)
def test_unsupported_fields_fail_naming_the_field(tmp_path: Path, field: str) -> None:
    _tree(tmp_path, {"kustomization.yaml": f"{field}: []\n"})
    with pytest.raises(KustomizeError, match=f"field '{field}' is not supported"):
        build(tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/example/repo//deploy?ref=v1",
        "github.com/example/repo/deploy",
        "git@github.com:x/y",
    ],
)
def test_remote_resources_are_rejected(tmp_path: Path, url: str) -> None:
    _tree(tmp_path, {"kustomization.yaml": f"resources:\n- {url}\n"})
    with pytest.raises(KustomizeError, match=r"remote resource .* is not supported"):
        build(tmp_path)


def test_remote_components_are_rejected(tmp_path: Path) -> None:
    _tree(tmp_path, {"kustomization.yaml": "components:\n- https://github.com/example/repo//components/x\n"})
    with pytest.raises(KustomizeError, match=r"remote component .* is not supported"):
        build(tmp_path)


def test_replacement_source_must_exist(tmp_path: Path) -> None:
    # message recorded with kubectl kustomize (kustomize v5.5.0)
    _tree(
        tmp_path,
        {
            "kustomization.yaml": "replacements:\n- source:\n    kind: Secret\n  targets:\n  - select:\n      kind: Service\n"
        },
    )
    with pytest.raises(
        KustomizeError, match=r"nothing selected by Secret\.\[noVer\]\.\[noGrp\]/\[noName\]\.\[noNs\]$"
    ):
        build(tmp_path)


def test_unknown_field(tmp_path: Path) -> None:
    _tree(tmp_path, {"kustomization.yaml": "resourcess:\n- x.yaml\n"})
    with pytest.raises(KustomizeError, match='json: unknown field "resourcess"'):
        build(tmp_path)


def test_file_outside_root_is_a_security_error(tmp_path: Path) -> None:
    # Message recorded from kubectl kustomize (kustomize v5.5.0), with the paths of this tree.
    _tree(tmp_path, {"outside.yaml": CONFIG_MAP, "in/kustomization.yaml": "resources:\n- ../outside.yaml\n"})
    root = tmp_path.resolve()
    expected = (
        f"accumulating resources: accumulation err='accumulating resources from '../outside.yaml': "
        f"security; file '{root}/outside.yaml' is not in or below '{root}/in'': "
        f"must build at directory: '{root}/outside.yaml': file is not directory"
    )
    with pytest.raises(KustomizeError) as info:
        build(tmp_path / "in")
    assert str(info.value) == expected


def test_generator_file_outside_root(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "secret.txt": "s3cr3t",
            "app/kustomization.yaml": "configMapGenerator:\n- name: x\n  files:\n  - ../secret.txt\n",
        },
    )
    with pytest.raises(KustomizeError, match=r"security; file .*secret\.txt' is not in or below"):
        build(tmp_path / "app")


def test_missing_kustomization(tmp_path: Path) -> None:
    with pytest.raises(KustomizeError, match=r"unable to find one of 'kustomization\.yaml'"):
        build(tmp_path)


def test_replicas_without_target(tmp_path: Path) -> None:
    _tree(tmp_path, {"kustomization.yaml": "replicas:\n- name: nope\n  count: 2\n"})
    expected = (
        "resource with name nope does not match a config with the following GVK "
        "[Deployment.[noVer].[noGrp] StatefulSet.[noVer].[noGrp] ReplicaSet.[noVer].[noGrp] "
        "ReplicationController.[noVer].[noGrp]]"
    )
    with pytest.raises(KustomizeError) as info:
        build(tmp_path)
    assert str(info.value) == expected


def test_json_patch_needs_target(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"kustomization.yaml": "patches:\n- patch: |-\n    - op: add\n      path: /x\n      value: 1\n"},
    )
    with pytest.raises(KustomizeError, match="must specify a target for JSON patch"):
        build(tmp_path)


def test_generator_merge_without_base(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"kustomization.yaml": "configMapGenerator:\n- name: x\n  behavior: merge\n  literals: [a=b]\n"},
    )
    with pytest.raises(KustomizeError, match="does not exist; cannot merge or replace"):
        build(tmp_path)


def test_component_must_be_a_component(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"kustomization.yaml": "components:\n- comp\n", "comp/kustomization.yaml": "resources: []\n"},
    )
    with pytest.raises(KustomizeError, match="expected kind 'Component'"):
        build(tmp_path)


def test_invalid_yaml_in_resource(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"kustomization.yaml": "resources:\n- bad.yaml\n", "bad.yaml": "a: b\n c: d\n"},
    )
    with pytest.raises(KustomizeError, match=r"MalformedYAMLError: yaml: .* in File: bad\.yaml"):
        build(tmp_path)


def test_namespace_conflict(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "kustomization.yaml": "namespace: one\nresources:\n- cm.yaml\n",
            "cm.yaml": CONFIG_MAP + "---\n" + CONFIG_MAP.replace("name: x", "name: x\n  namespace: two"),
        },
    )
    with pytest.raises(KustomizeError, match="namespace transformation produces ID conflict"):
        build(tmp_path)


# kustomize decodes kustomization.yaml with YAML 1.1 rules into typed Go structs; the messages
# below were recorded with kubectl kustomize (kustomize v5.5.0).
@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        (
            "namespace: yes\n",
            "cannot unmarshal bool into Go struct field Kustomization.namespace of type string",
        ),
        (
            "images:\n- name: a\n  newTag: 1.36\n",
            "cannot unmarshal number into Go struct field Image.images.newTag of type string",
        ),
        (
            "commonLabels:\n  a: on\n",
            "cannot unmarshal bool into Go struct field Kustomization.commonLabels of type string",
        ),
        (
            "resources:\n- 1\n",
            "cannot unmarshal number into Go struct field Kustomization.resources of type string",
        ),
        (
            "configMapGenerator:\n- name: a\n  literals:\n  - 1\n",
            "cannot unmarshal number into Go struct field ConfigMapArgs.configMapGenerator.literals of type string",
        ),
        (
            'replicas:\n- name: a\n  count: "2"\n',
            "cannot unmarshal string into Go struct field Replica.replicas.count of type int64",
        ),
    ],
)
def test_mistyped_kustomization_fields(tmp_path: Path, kustomization: str, message: str) -> None:
    _tree(tmp_path, {"kustomization.yaml": kustomization})
    with pytest.raises(KustomizeError) as info:
        build(tmp_path)
    assert str(info.value) == f"invalid Kustomization: json: {message}"


def test_dates_in_kustomization_stay_text(tmp_path: Path) -> None:
    # kubectl kustomize prints: annotations: {release: "2024-01-01"}
    _tree(
        tmp_path,
        {
            "kustomization.yaml": "commonAnnotations:\n  release: 2024-01-01\nresources:\n- cm.yaml\n",
            "cm.yaml": CONFIG_MAP,
        },
    )
    assert build(tmp_path).resources[0]["metadata"]["annotations"] == {"release": "2024-01-01"}
