"""Reading build bundles: what apply accepts, what it refuses, and how it names objects."""

from __future__ import annotations

import re

import pytest

from libs.common.artifacts import pack_files
from services.apply.manifests import (
    BundleError,
    ObjMeta,
    identity,
    parse_manifests,
    read_bundle,
    sort_key,
    stage_of,
)

pytestmark = pytest.mark.unit

SECRET_WITH_A_TAB = """\
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: "hunter2
\tbroken: [
"""


def test_bundle_objects_and_inventory_ids() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
status: {replicas: 3}
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: apps}
"""
    objects = read_bundle(pack_files({"manifests.yaml": text.encode()}), max_bytes=1 << 20)
    assert [identity(o).id for o in objects] == ["apps_web_apps_Deployment", "_apps__Namespace"]
    assert "status" not in objects[0]
    assert [identity(o).display() for o in sorted(objects, key=sort_key)] == [
        "Namespace/apps",
        "Deployment/apps/web",
    ]
    assert ObjMeta.parse("apps_web_apps_Deployment") == identity(objects[0])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a\n- b\n", "document 0 of manifests.yaml is not a Kubernetes object"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "lacks apiVersion, kind or metadata.name"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n",
            "ConfigMap/a/x appears twice in the build",
        ),
    ],
)
def test_invalid_bundles_are_refused(text: str, error: str) -> None:
    with pytest.raises(BundleError, match=re.escape(error)):
        parse_manifests(text)


def test_yaml_errors_never_repeat_the_document() -> None:
    with pytest.raises(BundleError) as caught:
        parse_manifests(SECRET_WITH_A_TAB)
    assert "hunter2" not in str(caught.value)
    assert "line " in str(caught.value)


def test_bundle_without_manifests_file() -> None:
    with pytest.raises(BundleError, match=re.escape("has no manifests.yaml")):
        read_bundle(pack_files({"other.yaml": b""}), max_bytes=1024)
    with pytest.raises(BundleError, match=re.escape("not a readable tar.gz")):
        read_bundle(b"not a tarball", max_bytes=1024)


def test_apply_stages() -> None:
    def doc(kind: str, api_version: str = "v1") -> dict[str, object]:
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}

    assert stage_of(doc("CustomResourceDefinition", "apiextensions.k8s.io/v1")) == 0
    assert stage_of(doc("Namespace")) == 0
    assert stage_of(doc("ClusterRole", "rbac.authorization.k8s.io/v1")) == 0
    assert stage_of(doc("IngressClass", "networking.k8s.io/v1")) == 1
    assert stage_of(doc("Deployment", "apps/v1")) == 2


@pytest.mark.parametrize(
    ("id_", "ident"),
    [
        ("apps_web_apps_Deployment", ObjMeta("apps", "web", "apps", "Deployment")),
        ("default_settings__ConfigMap", ObjMeta("default", "settings", "", "ConfigMap")),
        ("_apps__Namespace", ObjMeta("", "apps", "", "Namespace")),
        (
            "_system__viewer_rbac.authorization.k8s.io_ClusterRole",
            ObjMeta("", "system:viewer", "rbac.authorization.k8s.io", "ClusterRole"),
        ),
    ],
)
def test_inventory_ids_round_trip_with_fluxs_encoding(id_: str, ident: ObjMeta) -> None:
    """Flux writes `:` in a name as `__`; ids it wrote (and ours) read back to the same object."""
    assert ObjMeta.parse(id_) == ident
    assert ident.id == id_


@pytest.mark.parametrize("id_", ["", "web", "apps_web_Deployment", "a_b_c_d_e", "_x_y_"])
def test_malformed_inventory_ids_are_refused(id_: str) -> None:
    with pytest.raises(ValueError, match="invalid inventory id"):
        ObjMeta.parse(id_)
