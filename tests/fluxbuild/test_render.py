"""Flux's build semantics over a directory: generated kustomization, spec transforms, substitution."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.fluxbuild import (
    ARTIFACT_FAILED,
    BUILD_FAILED,
    BuildSpec,
    FluxBuildError,
    Rendered,
    merge_variables,
    render,
    secret_variables,
)

pytestmark = pytest.mark.unit

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ghcr.io/acme/web:1.0.0
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def build(root: Path, spec: dict[str, Any], **kwargs: Any) -> Rendered:
    return render(root, BuildSpec.from_spec(spec), **kwargs)


def by_kind(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in rendered.resources}


# --- generated kustomization -------------------------------------------------------------------


def test_plain_manifests_get_a_generated_kustomization(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/deploy.yaml": DEPLOYMENT,
            "apps/nested/svc.yml": SERVICE,
            "apps/notes.txt": "not yaml at all: [",
            "apps/base/kustomization.yaml": "resources: [cm.yaml]\n",
            "apps/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
        },
    )
    rendered = build(tmp_path, {"path": "./apps"})
    assert [(o["kind"], o["metadata"]["name"]) for o in rendered.resources] == [
        ("ConfigMap", "cfg"),
        ("Service", "web"),
        ("Deployment", "web"),
    ]
    assert rendered.object_count == 3
    assert list(yaml.safe_load_all(rendered.yaml)) == rendered.resources
    # the caller's tree is never modified
    assert not (tmp_path / "apps" / "kustomization.yaml").exists()


def test_root_path_is_the_default(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT})
    assert build(tmp_path, {}).object_count == 1


def test_a_non_kubernetes_yaml_file_fails_naming_it(tmp_path: Path) -> None:
    write(tmp_path, {"apps/deploy.yaml": DEPLOYMENT, "apps/.gitlab-ci.yml": "stages:\n  - test\n"})
    with pytest.raises(FluxBuildError) as err:
        build(tmp_path, {"path": "apps"})
    assert err.value.reason == BUILD_FAILED
    assert str(err.value).startswith("failed to decode Kubernetes YAML from apps/.gitlab-ci.yml: ")
    assert "missing kind" in str(err.value)


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path, {"apps/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bad: [1, 2\n"}
    )
    with pytest.raises(FluxBuildError) as err:
        build(tmp_path, {"path": "apps"})
    message = str(err.value)
    assert "apps/bad.yaml" in message and "line " in message, message


def test_broken_yaml_in_an_existing_kustomization_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/kustomization.yaml": "resources: [deploy.yaml]\n",
            "apps/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n   bad: x\n",
        },
    )
    with pytest.raises(FluxBuildError) as err:
        build(tmp_path, {"path": "apps"})
    message = str(err.value)
    assert message.startswith("kustomize build failed: ")
    assert "deploy.yaml" in message and "line 5" in message, message
    assert str(tmp_path) not in message  # paths are shown relative to the artifact


# --- path --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../outside", "apps/../../outside", "/../../etc"])
def test_path_escaping_the_artifact_is_refused(tmp_path: Path, path: str) -> None:
    root = write(tmp_path / "root", {"apps/deploy.yaml": DEPLOYMENT})
    write(tmp_path, {"outside/deploy.yaml": DEPLOYMENT})
    with pytest.raises(FluxBuildError, match="points outside the source artifact") as err:
        build(root, {"path": path})
    assert err.value.reason == ARTIFACT_FAILED


def test_symlinked_path_leaving_the_artifact_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "root", {"apps/deploy.yaml": DEPLOYMENT})
    write(tmp_path, {"outside/deploy.yaml": DEPLOYMENT})
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(FluxBuildError, match="points outside"):
        render(root, BuildSpec.from_spec({"path": "link"}), in_place=True)


@pytest.mark.parametrize("entry", ["../../../elsewhere", "/abs/elsewhere"])
def test_bases_outside_the_artifact_are_refused(tmp_path: Path, entry: str) -> None:
    root = write(tmp_path / "a" / "b" / "root", {"apps/kustomization.yaml": f"resources:\n- {entry}\n"})
    write(tmp_path, {"elsewhere/kustomization.yaml": "resources: [cm.yaml]\n"})
    write(tmp_path, {"elsewhere/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\n"})
    if entry.startswith("/"):
        entry = str(tmp_path / "elsewhere")
        write(root, {"apps/kustomization.yaml": f"resources:\n- {entry}\n"})
    with pytest.raises(
        FluxBuildError,
        match=r"apps/kustomization.yaml: resources entry .* points outside the source artifact",
    ):
        build(root, {"path": "apps"})


def test_missing_path_is_an_artifact_failure(tmp_path: Path) -> None:
    write(tmp_path, {"apps/deploy.yaml": DEPLOYMENT})
    with pytest.raises(FluxBuildError, match="kustomization path not found: stat clusters/prod") as err:
        build(tmp_path, {"path": "./clusters/prod"})
    assert err.value.reason == ARTIFACT_FAILED


# --- spec transforms ---------------------------------------------------------------------------


def test_target_namespace_prefix_and_suffix(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT, "svc.yaml": SERVICE})
    objs = by_kind(build(tmp_path, {"targetNamespace": "prod", "namePrefix": "p-", "nameSuffix": "-v2"}))
    assert objs["Deployment"]["metadata"] == {"name": "p-web-v2", "namespace": "prod"}
    assert objs["Service"]["metadata"]["namespace"] == "prod"


def test_spec_prefix_replaces_the_kustomization_own_and_namespace_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "namespace: dev\nnamePrefix: dev-\nresources: [deploy.yaml]\n",
            "deploy.yaml": DEPLOYMENT,
        },
    )
    objs = by_kind(build(tmp_path, {"targetNamespace": "prod", "namePrefix": "prod-"}))
    assert objs["Deployment"]["metadata"] == {"name": "prod-web", "namespace": "prod"}


def test_images_replace_an_entry_of_the_same_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: ghcr.io/acme/web\n  newTag: 9.9.9\n",
            "deploy.yaml": DEPLOYMENT,
        },
    )
    objs = by_kind(
        build(
            tmp_path, {"images": [{"name": "ghcr.io/acme/web", "newName": "registry/web", "newTag": "2.0.0"}]}
        )
    )
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry/web:2.0.0"


def test_images_digest(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT})
    digest = "sha256:" + "a" * 64
    objs = by_kind(build(tmp_path, {"images": [{"name": "ghcr.io/acme/web", "digest": digest}]}))
    assert (
        objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"ghcr.io/acme/web@{digest}"
    )


def test_patches_strategic_merge_and_json6902_with_targets(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT, "svc.yaml": SERVICE})
    spec = {
        "patches": [
            {
                "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
            },
            {
                "patch": '[{"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}]',
                "target": {"kind": "Service", "name": "web"},
            },
        ]
    }
    objs = by_kind(build(tmp_path, spec))
    assert objs["Deployment"]["spec"]["replicas"] == 3
    assert objs["Service"]["metadata"]["labels"] == {"patched": "yes"}
    assert "labels" not in objs["Deployment"]["metadata"]


def test_components_and_ignore_missing_components(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/deploy.yaml": DEPLOYMENT,
            "components/scale/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "replicas:\n- name: web\n  count: 5\n"
            ),
        },
    )
    spec = {"path": "apps", "components": ["../components/scale", "../components/absent"]}
    with pytest.raises(FluxBuildError, match="components/absent"):
        build(tmp_path, spec)
    objs = by_kind(build(tmp_path, {**spec, "ignoreMissingComponents": True}))
    assert objs["Deployment"]["spec"]["replicas"] == 5


def test_remote_component_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT})
    with pytest.raises(FluxBuildError, match="must be local and relative"):
        build(tmp_path, {"components": ["https://github.com/acme/components//x"]})


def test_common_metadata_overrides_keys_on_every_object_only(tmp_path: Path) -> None:
    deploy = DEPLOYMENT.replace("  name: web\n", "  name: web\n  labels: {team: old, keep: me}\n", 1)
    write(tmp_path, {"deploy.yaml": deploy, "svc.yaml": SERVICE})
    spec = {"commonMetadata": {"labels": {"team": "platform"}, "annotations": {"owner": "ops"}}}
    objs = by_kind(build(tmp_path, spec))
    assert objs["Deployment"]["metadata"]["labels"] == {"team": "platform", "keep": "me"}
    assert objs["Deployment"]["metadata"]["annotations"] == {"owner": "ops"}
    assert objs["Service"]["metadata"]["labels"] == {"team": "platform"}
    # not a kustomize commonLabels: selectors and templates stay as they are
    assert objs["Deployment"]["spec"]["selector"] == {"matchLabels": {"app": "web"}}


@pytest.mark.parametrize("field", ["decryption", "kubeConfig"])
def test_unsupported_fields_fail_naming_the_field(tmp_path: Path, field: str) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT})
    with pytest.raises(FluxBuildError, match=f"spec.{field}: .*not supported"):
        build(tmp_path, {field: {"provider": "sops", "secretRef": {"name": "x"}}})


# --- post-build substitution -------------------------------------------------------------------

TEMPLATED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-${cluster}
  namespace: apps
data:
  region: ${region:=eu-west-1}
  replicas: "${replicas}"
  literal: $${kept}
  dollars: cost $$5
  bare: $bare
"""


def test_substitution_with_defaults_escapes_and_precedence(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    spec = {"postBuild": {"substitute": {"cluster": "prod"}}}
    sources = [{"cluster": "from-cm", "replicas": "2"}, {"replicas": "4\n"}]
    cm = build(tmp_path, spec, sources=sources).resources[0]
    assert cm["metadata"]["name"] == "settings-prod"  # inline substitute wins over substituteFrom
    assert cm["data"] == {
        "region": "eu-west-1",
        "replicas": "4",  # later substituteFrom wins; newlines removed
        "literal": "${kept}",
        "dollars": "cost $5",
        "bare": "$bare",
    }


def test_substituted_values_are_typed_like_yaml(tmp_path: Path) -> None:
    write(tmp_path, {"deploy.yaml": DEPLOYMENT.replace("replicas: 1", "replicas: ${replicas}")})
    objs = by_kind(build(tmp_path, {"postBuild": {"substitute": {"replicas": "3"}}}))
    assert objs["Deployment"]["spec"]["replicas"] == 3


def test_strict_mode_names_the_variable_and_the_object(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    with pytest.raises(FluxBuildError) as err:
        build(tmp_path, {"postBuild": {"substitute": {"cluster": "prod"}}})
    assert err.value.reason == BUILD_FAILED
    assert str(err.value) == (
        "post build failed for 'ConfigMap/apps/settings-${cluster}': envsubst error: "
        'variable substitution failed: variable not set (strict mode): "replicas"'
    )


def test_strict_mode_off_renders_undefined_variables_empty(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    spec = BuildSpec.from_spec({"postBuild": {"substitute": {"cluster": "prod"}}}, strict=False)
    assert render(tmp_path, spec).resources[0]["data"]["replicas"] == ""


def test_no_resolved_variables_skips_substitution_unless_strategy_always(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    untouched = build(tmp_path, {"postBuild": {"substituteFrom": []}}).resources[0]
    assert untouched["metadata"]["name"] == "settings-${cluster}"
    assert untouched["data"]["literal"] == "$${kept}"
    with pytest.raises(FluxBuildError, match="variable not set \\(strict mode\\)"):
        build(tmp_path, {"postBuild": {"substituteStrategy": "Always"}})


def test_no_post_build_means_no_substitution(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    assert build(tmp_path, {}, sources=[{"cluster": "x"}]).resources[0]["data"]["literal"] == "$${kept}"


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_opt_out_label_or_annotation(tmp_path: Path, where: str) -> None:
    opted = TEMPLATED.replace(
        "  namespace: apps\n",
        f"  namespace: apps\n  {where}:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n",
    )
    write(tmp_path, {"cm.yaml": opted, "deploy.yaml": DEPLOYMENT.replace("replicas: 1", "replicas: ${n}")})
    objs = by_kind(build(tmp_path, {"postBuild": {"substitute": {"n": "2"}}}))
    assert objs["ConfigMap"]["data"]["replicas"] == "${replicas}"
    assert objs["Deployment"]["spec"]["replicas"] == 2


def test_invalid_variable_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"cm.yaml": TEMPLATED})
    with pytest.raises(FluxBuildError, match="'my-var' var name is invalid"):
        build(tmp_path, {"postBuild": {}}, sources=[{"my-var": "x"}])


def test_secret_values_never_reach_error_messages(tmp_path: Path) -> None:
    write(
        tmp_path, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: ${token}\n"}
    )
    secret = {"metadata": {"name": "creds"}, "data": {"token": "W3M0cDNyOiBzM2NyM3Q="}}  # "[s0p3r: s3cr3t"
    values = secret_variables(secret)
    with pytest.raises(FluxBuildError) as err:
        build(tmp_path, {"postBuild": {}}, sources=[values], sensitive=set(values.values()))
    assert "s3cr3t" not in str(err.value)
    assert "post build failed for 'ConfigMap/c'" in str(err.value)


def test_merge_variables_precedence() -> None:
    assert merge_variables([{"a": "1", "b": "1"}, {"b": "2\n"}], {"a": "inline"}) == {"a": "inline", "b": "2"}


def test_an_empty_path_renders_no_objects(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    rendered = build(tmp_path, {"path": "empty", "targetNamespace": "x"})
    assert (rendered.resources, rendered.yaml, rendered.object_count) == ([], "", 0)


def test_quoted_templates_stay_strings_and_plain_ones_are_typed(tmp_path: Path) -> None:
    manifest = """\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: typed
    data:
      quoted: "${n}"
      single: '${flag}'
      block: |
        n=${n}
    spec:
      count: ${n}
      enabled: ${flag}
      list: ${items}
      nothing: ${empty}
    """
    write(tmp_path, {"cm.yaml": manifest})
    variables = {"n": "3", "flag": "true", "items": "[a, b]", "empty": ""}
    obj = build(tmp_path, {"postBuild": {"substitute": variables}}).resources[0]
    assert obj["data"] == {"quoted": "3", "single": "true", "block": "n=3\n"}
    assert obj["spec"] == {"count": 3, "enabled": True, "list": ["a", "b"], "nothing": None}


def test_sops_encrypted_secrets_are_refused_without_decryption(tmp_path: Path) -> None:
    secret = """\
    apiVersion: v1
    kind: Secret
    metadata:
      name: creds
      namespace: apps
    stringData:
      token: ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]
    sops:
      mac: ENC[AES256_GCM,data:xyz=,iv:a=,tag:b=,type:str]
      lastmodified: "2026-01-01T00:00:00Z"
      version: 3.9.0
    """
    write(tmp_path, {"secret.yaml": secret})
    with pytest.raises(
        FluxBuildError, match="Secret/apps/creds is SOPS encrypted, configuring decryption is required"
    ):
        build(tmp_path, {})
