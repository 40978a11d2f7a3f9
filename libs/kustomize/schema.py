"""Type checks of a kustomization file, as kustomize's strict JSON decoding performs them.

kustomize reads kustomization.yaml with YAML 1.1 rules (sigs.k8s.io/yaml), converts it to JSON
and decodes it into Go structs, so ``namespace: no`` (a boolean) or ``newTag: 1.36`` (a number)
are errors there; this module reproduces those errors with kustomize's wording.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from libs.kustomize.errors import KustomizeError

try:
    from yaml import CSafeLoader as _Yaml11Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Yaml11Loader  # type: ignore[assignment]

# A field type: "string", "int64", "bool", "map" (string values), "any",
# ("list", item_type) or ("struct", GoName, {json_name: field_type}).
FieldType = Any

_SELECTOR = (
    "struct",
    "Selector",
    {
        "group": "string",
        "version": "string",
        "kind": "string",
        "name": "string",
        "namespace": "string",
        "labelSelector": "string",
        "annotationSelector": "string",
    },
)
_OPTIONS = (
    "struct",
    "GeneratorOptions",
    {"labels": "map", "annotations": "map", "disableNameSuffixHash": "bool", "immutable": "bool"},
)
_GENERATOR_FIELDS = {
    "name": "string",
    "namespace": "string",
    "behavior": "string",
    "literals": ("list", "string"),
    "files": ("list", "string"),
    "envs": ("list", "string"),
    "env": "string",
    "options": _OPTIONS,
}
_PATCH = ("struct", "Patch", {"path": "string", "patch": "string", "target": _SELECTOR, "options": "any"})
_FIELD_SPEC = (
    "struct",
    "FieldSpec",
    {"group": "string", "version": "string", "kind": "string", "path": "string", "create": "bool"},
)

KUSTOMIZATION: FieldType = (
    "struct",
    "Kustomization",
    {
        "apiVersion": "string",
        "kind": "string",
        "metadata": "any",
        "resources": ("list", "string"),
        "bases": ("list", "string"),
        "components": ("list", "string"),
        "namespace": "string",
        "namePrefix": "string",
        "nameSuffix": "string",
        "commonLabels": "map",
        "labels": (
            "list",
            (
                "struct",
                "Label",
                {
                    "pairs": "map",
                    "includeSelectors": "bool",
                    "includeTemplates": "bool",
                    "fields": ("list", _FIELD_SPEC),
                },
            ),
        ),
        "commonAnnotations": "map",
        "images": (
            "list",
            (
                "struct",
                "Image",
                {
                    "name": "string",
                    "newName": "string",
                    "newTag": "string",
                    "digest": "string",
                    "tagSuffix": "string",
                },
            ),
        ),
        "replicas": ("list", ("struct", "Replica", {"name": "string", "count": "int64"})),
        "patches": ("list", _PATCH),
        "patchesStrategicMerge": ("list", "string"),
        "patchesJson6902": ("list", _PATCH),
        "configMapGenerator": ("list", ("struct", "ConfigMapArgs", _GENERATOR_FIELDS)),
        "secretGenerator": ("list", ("struct", "SecretArgs", {**_GENERATOR_FIELDS, "type": "string"})),
        "generatorOptions": _OPTIONS,
        "configurations": ("list", "string"),
        "crds": ("list", "string"),
        "sortOptions": "any",
        "buildMetadata": ("list", "string"),
        "replacements": "any",
    },
)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | datetime.date):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_kustomization_types(text: str) -> None:
    """Raise kustomize's ``invalid Kustomization: json: cannot unmarshal ...`` for a mistyped field."""
    try:
        data = yaml.load(text, Loader=_Yaml11Loader)
    except yaml.YAMLError:
        return  # the YAML 1.2 parse reports syntax errors
    if isinstance(data, dict):
        _check(data, KUSTOMIZATION, "Kustomization", [])


def _fail(value: Any, struct: str, path: list[str], go_type: str) -> None:
    raise KustomizeError(
        f"invalid Kustomization: json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"{struct}.{'.'.join(path)} of type {go_type}"
    )


def _check(value: Any, field_type: FieldType, struct: str, path: list[str]) -> None:
    if value is None or field_type == "any":
        return
    if field_type == "string":
        if _json_type(value) != "string":
            _fail(value, struct, path, "string")
    elif field_type == "int64":
        if _json_type(value) != "number":
            _fail(value, struct, path, "int64")
    elif field_type == "bool":
        if _json_type(value) != "bool":
            _fail(value, struct, path, "bool")
    elif field_type == "map":
        if not isinstance(value, dict):
            _fail(value, struct, path, "map[string]string")
            return
        for item in value.values():
            if item is not None and _json_type(item) != "string":
                _fail(item, struct, path, "string")
    elif field_type[0] == "list":
        if not isinstance(value, list):
            _fail(value, struct, path, "[]" + _go_name(field_type[1]))
            return
        for item in value:
            _check(item, field_type[1], struct, path)
    else:
        _, name, fields = field_type
        if not isinstance(value, dict):
            _fail(value, struct, path, "types." + name)
            return
        for key, item in value.items():
            if key in fields:
                _check(item, fields[key], name, [*path, str(key)])


def _go_name(field_type: FieldType) -> str:
    if isinstance(field_type, str):
        return field_type
    return "types." + str(field_type[1]) if field_type[0] == "struct" else "[]" + _go_name(field_type[1])
