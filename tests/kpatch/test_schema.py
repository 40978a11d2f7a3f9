from __future__ import annotations

from typing import Any

import pytest

from libs.kpatch import (
    FieldSchema,
    PatchError,
    SchemaRegistry,
    builtin_registry,
    generic_object_schema,
    object_meta_schema,
    schema_for,
)

pytestmark = pytest.mark.unit


def walk(schema: FieldSchema | None, path: str) -> FieldSchema | None:
    """Follow ``a.b[].c``: names are fields, ``[]`` steps into list elements."""
    for part in path.split("."):
        name, _, rest = part.partition("[]")
        if name:
            schema = schema.child(name) if schema is not None else None
        if part.endswith("[]"):
            schema = schema.items() if schema is not None else None
        assert rest == ""
    return schema


# Where each workload kind keeps its pod spec.
POD_SPECS = [
    ("v1", "Pod", "spec"),
    ("v1", "PodTemplate", "template.spec"),
    ("v1", "ReplicationController", "spec.template.spec"),
    ("apps/v1", "Deployment", "spec.template.spec"),
    ("apps/v1", "StatefulSet", "spec.template.spec"),
    ("apps/v1", "DaemonSet", "spec.template.spec"),
    ("apps/v1", "ReplicaSet", "spec.template.spec"),
    ("batch/v1", "Job", "spec.template.spec"),
    ("batch/v1", "CronJob", "spec.jobTemplate.spec.template.spec"),
]

# (path below the pod spec, list_type, merge_key, map_keys, strategy)
POD_SPEC_LISTS: list[tuple[str, str, str | None, tuple[str, ...], str | None]] = [
    ("containers", "map", "name", ("name",), "merge"),
    ("initContainers", "map", "name", ("name",), "merge"),
    ("ephemeralContainers", "map", "name", ("name",), "merge"),
    ("containers[].env", "map", "name", ("name",), "merge"),
    ("initContainers[].env", "map", "name", ("name",), "merge"),
    ("ephemeralContainers[].env", "map", "name", ("name",), "merge"),
    ("containers[].envFrom", "atomic", None, (), None),
    ("containers[].ports", "map", "containerPort", ("containerPort", "protocol"), "merge"),
    ("ephemeralContainers[].ports", "map", "containerPort", ("containerPort", "protocol"), "merge"),
    ("containers[].volumeMounts", "map", "mountPath", ("mountPath",), "merge"),
    ("containers[].volumeDevices", "map", "devicePath", ("devicePath",), "merge"),
    ("containers[].command", "atomic", None, (), None),
    ("containers[].args", "atomic", None, (), None),
    ("containers[].resources.claims", "map", None, ("name",), None),
    ("containers[].securityContext.capabilities.add", "atomic", None, (), None),
    ("volumes", "map", "name", ("name",), "merge,retainKeys"),
    ("imagePullSecrets", "map", "name", ("name",), "merge"),
    ("hostAliases", "map", "ip", ("ip",), "merge"),
    ("tolerations", "atomic", None, (), None),
    ("topologySpreadConstraints", "map", "topologyKey", ("topologyKey", "whenUnsatisfiable"), "merge"),
    ("resourceClaims", "map", "name", ("name",), "merge,retainKeys"),
    ("schedulingGates", "map", "name", ("name",), "merge"),
    ("readinessGates", "atomic", None, (), None),
    (
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
        "atomic",
        None,
        (),
        None,
    ),
]


@pytest.mark.parametrize(("api_version", "kind", "pod_spec"), POD_SPECS)
@pytest.mark.parametrize(("path", "list_type", "merge_key", "map_keys", "strategy"), POD_SPEC_LISTS)
def test_pod_spec_lists_in_every_workload(
    api_version: str,
    kind: str,
    pod_spec: str,
    path: str,
    list_type: str,
    merge_key: str | None,
    map_keys: tuple[str, ...],
    strategy: str | None,
) -> None:
    field = walk(schema_for(api_version, kind), f"{pod_spec}.{path}")
    assert field is not None, f"{kind} {pod_spec}.{path} is unknown"
    assert field.type == "list"
    assert (field.list_type, field.merge_key, field.map_keys, field.strategy) == (
        list_type,
        merge_key,
        map_keys,
        strategy,
    )


# (apiVersion, kind, path, list_type, merge_key, map_keys, strategy)
OTHER_LISTS: list[tuple[str, str, str, str, str | None, tuple[str, ...], str | None]] = [
    ("v1", "Service", "spec.ports", "map", "port", ("port", "protocol"), "merge"),
    ("v1", "Service", "spec.clusterIPs", "atomic", None, (), None),
    ("v1", "Service", "status.conditions", "map", "type", ("type",), "merge"),
    ("apps/v1", "Deployment", "status.conditions", "map", "type", ("type",), "merge"),
    ("apps/v1", "StatefulSet", "status.conditions", "map", "type", ("type",), "merge"),
    ("apps/v1", "DaemonSet", "status.conditions", "map", "type", ("type",), "merge"),
    ("apps/v1", "ReplicaSet", "status.conditions", "map", "type", ("type",), "merge"),
    ("apps/v1", "StatefulSet", "spec.volumeClaimTemplates", "atomic", None, (), None),
    ("batch/v1", "Job", "status.conditions", "atomic", "type", (), "merge"),
    ("v1", "Pod", "status.conditions", "map", "type", ("type",), "merge"),
    ("v1", "Pod", "status.podIPs", "map", "ip", ("ip",), "merge"),
    ("v1", "Pod", "status.containerStatuses", "atomic", None, (), None),
    ("v1", "Node", "status.conditions", "map", "type", ("type",), "merge"),
    ("v1", "Node", "status.addresses", "map", "type", ("type",), "merge"),
    ("v1", "Node", "spec.podCIDRs", "set", None, (), "merge"),
    ("v1", "Node", "spec.taints", "atomic", None, (), None),
    ("v1", "Namespace", "status.conditions", "map", "type", ("type",), "merge"),
    ("v1", "Namespace", "spec.finalizers", "atomic", None, (), None),
    ("v1", "PersistentVolumeClaim", "status.conditions", "map", "type", ("type",), "merge"),
    ("v1", "ServiceAccount", "secrets", "map", "name", ("name",), "merge"),
    ("policy/v1", "PodDisruptionBudget", "status.conditions", "map", "type", ("type",), "merge"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "status.conditions", "map", "type", ("type",), "merge"),
    ("rbac.authorization.k8s.io/v1", "Role", "rules", "atomic", None, (), None),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "rules", "atomic", None, (), None),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "rules[].verbs", "atomic", None, (), None),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "subjects", "atomic", None, (), None),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "subjects", "atomic", None, (), None),
    ("networking.k8s.io/v1", "Ingress", "spec.rules", "atomic", None, (), None),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "webhooks",
        "map",
        "name",
        ("name",),
        "merge",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "webhooks",
        "map",
        "name",
        ("name",),
        "merge",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "webhooks[].rules",
        "atomic",
        None,
        (),
        None,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "status.conditions",
        "map",
        None,
        ("type",),
        None,
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "spec.versions", "atomic", None, (), None),
    ("apps/v1", "Deployment", "metadata.ownerReferences", "map", "uid", ("uid",), "merge"),
    ("v1", "ConfigMap", "metadata.finalizers", "set", None, (), "merge"),
]


@pytest.mark.parametrize(
    ("api_version", "kind", "path", "list_type", "merge_key", "map_keys", "strategy"), OTHER_LISTS
)
def test_other_lists(
    api_version: str,
    kind: str,
    path: str,
    list_type: str,
    merge_key: str | None,
    map_keys: tuple[str, ...],
    strategy: str | None,
) -> None:
    field = walk(schema_for(api_version, kind), path)
    assert field is not None, f"{kind} {path} is unknown"
    assert (field.list_type, field.merge_key, field.map_keys, field.strategy) == (
        list_type,
        merge_key,
        map_keys,
        strategy,
    )


@pytest.mark.parametrize(
    ("api_version", "kind", "path", "map_type"),
    [
        ("v1", "ConfigMap", "data", "granular"),
        ("v1", "ConfigMap", "binaryData", "granular"),
        ("v1", "Secret", "data", "granular"),
        ("v1", "Secret", "stringData", "granular"),
        ("apps/v1", "Deployment", "metadata.labels", "granular"),
        ("apps/v1", "Deployment", "spec.template.metadata.annotations", "granular"),
        ("apps/v1", "Deployment", "spec.template.spec.nodeSelector", "atomic"),
        ("apps/v1", "Deployment", "spec.selector", "atomic"),
        ("v1", "Service", "spec.selector", "atomic"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "roleRef", "atomic"),
    ],
)
def test_maps(api_version: str, kind: str, path: str, map_type: str) -> None:
    field = walk(schema_for(api_version, kind), path)
    assert field is not None
    assert field.type in ("map", "object")
    assert field.map_type == map_type
    assert field.list_type is None


def test_map_values_are_scalars() -> None:
    data = walk(schema_for("v1", "ConfigMap"), "data")
    assert data is not None and data.type == "map"
    value = data.child("any-key")
    assert value is not None and value.type == "scalar"
    assert value.list_type is None and value.map_type is None


def test_retain_keys_strategy_on_deployment_strategy() -> None:
    strategy = walk(schema_for("apps/v1", "Deployment"), "spec.strategy")
    assert strategy is not None
    assert strategy.strategy == "retainKeys"
    assert strategy.strategies == frozenset({"retainKeys"})
    volumes = walk(schema_for("v1", "Pod"), "spec.volumes")
    assert volumes is not None and volumes.strategies == frozenset({"merge", "retainKeys"})


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("apps/v1beta2", "Deployment"),
        ("v1", "Deployment"),
        ("apps/v1", "Nonsense"),
    ],
)
def test_unknown_kinds_have_no_schema(api_version: str, kind: str) -> None:
    assert schema_for(api_version, kind) is None


def test_unknown_fields_have_no_schema() -> None:
    deployment = schema_for("apps/v1", "Deployment")
    assert deployment is not None
    assert deployment.child("nonsense") is None
    assert walk(deployment, "spec.template.spec.containers[].notAField") is None
    assert deployment.items() is None, "an object has no list elements"
    image = walk(deployment, "spec.template.spec.containers[].image")
    assert image is not None and image.type == "scalar" and image.child("x") is None


def test_lists_without_a_list_type_are_atomic() -> None:
    registry = SchemaRegistry(
        {"definitions": {"X": {"type": "object", "properties": {"l": {"type": "array", "items": {}}}}}}
    )
    field = registry.definition("X").child("l")
    assert field is not None
    assert (field.type, field.list_type, field.merge_key, field.map_keys, field.strategy) == (
        "list",
        "atomic",
        None,
        (),
        None,
    )


def test_lists_with_only_a_patch_strategy_read_as_server_side_apply_reads_them() -> None:
    merge_by_key = {
        "type": "array",
        "items": {},
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "ip",
    }
    merge_primitives = {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"}
    explicit = {**merge_by_key, "x-kubernetes-list-type": "atomic"}
    properties = {"byKey": merge_by_key, "primitives": merge_primitives, "explicit": explicit}
    registry = SchemaRegistry({"definitions": {"X": {"type": "object", "properties": properties}}})
    x = registry.definition("X")
    by_key, primitives, atomic = x.child("byKey"), x.child("primitives"), x.child("explicit")
    assert by_key is not None and (by_key.list_type, by_key.map_keys) == ("map", ("ip",))
    assert primitives is not None and (primitives.list_type, primitives.map_keys) == ("set", ())
    assert atomic is not None and (atomic.list_type, atomic.map_keys, atomic.merge_key) == (
        "atomic",
        (),
        "ip",
    )


def test_object_meta_schema() -> None:
    meta = object_meta_schema()
    labels, annotations = meta.child("labels"), meta.child("annotations")
    assert labels is not None and labels.type == "map" and labels.map_type == "granular"
    assert annotations is not None and annotations.type == "map"
    finalizers = meta.child("finalizers")
    assert finalizers is not None and (finalizers.list_type, finalizers.strategy) == ("set", "merge")
    owners = meta.child("ownerReferences")
    assert owners is not None and (owners.merge_key, owners.map_keys) == ("uid", ("uid",))
    generic = generic_object_schema()
    assert walk(generic, "metadata.finalizers") is not None
    assert generic.child("spec") is None


def test_every_workload_has_object_meta_where_expected() -> None:
    for api_version, kind, pod_spec in POD_SPECS:
        top = schema_for(api_version, kind)
        assert walk(top, "metadata.labels") is not None, kind
        template_meta = pod_spec.removesuffix("spec") + "metadata.annotations"
        if kind != "Pod":
            assert walk(top, template_meta) is not None, kind


def test_every_reference_in_the_bundled_table_resolves() -> None:
    registry = builtin_registry()
    names = registry.definition_names()
    assert len(names) > 50
    for name in names:
        definition = registry.definition(name)
        for field_name in definition.field_names():
            field = definition.child(field_name)
            assert field is not None
            elements = field.items()
            if field.type == "list":
                assert elements is not None, f"{name}.{field_name} has no items"
                elements.field_names()
            if field.merge_key is not None and elements is not None and elements.field_names():
                assert field.merge_key in elements.field_names(), f"{name}.{field_name}"
            for key in field.map_keys:
                if elements is not None and elements.field_names():
                    assert key in elements.field_names(), f"{name}.{field_name}"


def test_registry_reads_a_full_openapi_document_shape() -> None:
    document: dict[str, Any] = {
        "swagger": "2.0",
        "definitions": {
            "io.example.v1.Widget": {
                "type": "object",
                "properties": {
                    "spec": {
                        "allOf": [{"$ref": "#/definitions/io.example.v1.WidgetSpec"}],
                        "description": "d",
                    },
                },
                "x-kubernetes-group-version-kind": [
                    {"group": "example.io", "version": "v1", "kind": "Widget"}
                ],
            },
            "io.example.v1.WidgetSpec": {
                "type": "object",
                "properties": {
                    "parts": {
                        "type": "array",
                        "items": {"$ref": "#/definitions/io.example.v1.Part"},
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["id"],
                        "x-kubernetes-patch-merge-key": "id",
                        "x-kubernetes-patch-strategy": "merge",
                    }
                },
            },
            "io.example.v1.Part": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
    registry = SchemaRegistry(document)
    parts = walk(registry.schema_for("example.io/v1", "Widget"), "spec.parts")
    assert parts is not None
    assert (parts.list_type, parts.map_keys, parts.merge_key) == ("map", ("id",), "id")
    assert walk(parts, "[].id") is not None
    assert registry.schema_for("v1", "Widget") is None


def test_registry_errors() -> None:
    with pytest.raises(PatchError, match="definitions"):
        SchemaRegistry({"definitions": []})
    registry = SchemaRegistry(
        {"definitions": {"A": {"type": "object", "properties": {"b": {"$ref": "#/definitions/B"}}}}}
    )
    with pytest.raises(PatchError, match="'B' is missing"):
        registry.definition("A").child("b")
