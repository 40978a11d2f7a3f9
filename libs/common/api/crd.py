"""CustomResourceDefinitions generated from the pydantic models.

`crd_documents()` builds one `apiextensions.k8s.io/v1` CRD per kind with a *structural*
OpenAPI v3 schema per served version; `render_crd_files()` turns them into the YAML files kept
in `deploy/k8s/crds/` (pure and deterministic, so regenerating without model changes is
byte-identical). `python -m libs.common.api.crd [DIR]` writes the files.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from libs.common.api.meta import FluxObject
from libs.common.api.registry import ALL_KINDS

__all__ = [
    "CRD_DIR",
    "crd_documents",
    "crd_for",
    "file_name",
    "openapi_schema",
    "render_crd_files",
    "write_crd_files",
]

#: Where the generated files live, relative to the repository root.
CRD_DIR = Path("deploy/k8s/crds")

HEADER = (
    "# Generated from libs/common/api by libs.common.api.crd. DO NOT EDIT; run `python -m libs.common.gen`.\n"
)

_DROPPED_KEYS = {"title", "examples"}


class SchemaError(ValueError):
    """A model produced a JSON Schema construct that cannot be made structural."""


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a structural Kubernetes schema node."""
    node = dict(node)
    # Inline $ref (keeping sibling keywords such as description/default, which win).
    if "$ref" in node:
        ref = node.pop("$ref")
        name = ref.rsplit("/", 1)[-1]
        target = _convert(copy.deepcopy(defs[name]), defs, where)
        siblings = _convert_siblings(node, defs, where)
        return {**target, **siblings}
    # Optional[X] -> X; a field that may be null is simply not required.
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in node:
            options = [o for o in node.pop(combinator) if o.get("type") != "null"]
            if len(options) != 1:
                raise SchemaError(
                    f"{where}: {combinator} with {len(options)} non-null options is not structural"
                )
            inner = _convert(options[0], defs, where)
            siblings = _convert_siblings(node, defs, where)
            return {**inner, **siblings}
    return _convert_siblings(node, defs, where)


def _convert_siblings(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out["properties"] = {
                prop: _convert(schema, defs, f"{where}.{prop}") for prop, schema in value.items()
            }
            continue
        if key == "items":
            out["items"] = _convert(value, defs, f"{where}[]")
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs, f"{where}{{}}")
            continue  # `true` comes from extra="allow" models: the CRD prunes unknown fields.
        out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    elif out.get("type") == "object" and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _sorted(value: Any) -> Any:
    """Recursively sort mapping keys (as controller-gen does), keeping list order."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def openapi_schema(cls: type[FluxObject]) -> dict[str, Any]:
    """The structural `openAPIV3Schema` of one served version."""
    raw = cls.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    properties: dict[str, Any] = raw.get("properties", {})
    schema_properties: dict[str, Any] = {
        "apiVersion": {
            "description": "APIVersion defines the versioned schema of this representation of an object.",
            "type": "string",
        },
        "kind": {
            "description": "Kind is a string value representing the REST resource this object represents.",
            "type": "string",
        },
        "metadata": {"type": "object"},
    }
    for name in ("spec", "status"):
        if name in properties:
            schema_properties[name] = _convert(properties[name], defs, f"{cls.KIND}.{name}")
    top: dict[str, Any] = {"properties": schema_properties, "type": "object"}
    if cls.__doc__:
        top["description"] = cls.__doc__.strip().splitlines()[0]
    return _sorted(top)  # type: ignore[no-any-return]


def _version_entry(cls: type[FluxObject]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": cls.VERSION}
    if cls.PRINTER_COLUMNS:
        entry["additionalPrinterColumns"] = [col.to_crd() for col in cls.PRINTER_COLUMNS]
    entry["schema"] = {"openAPIV3Schema": openapi_schema(cls)}
    entry["served"] = True
    entry["storage"] = cls.STORAGE
    if cls.STATUS_SUBRESOURCE:
        entry["subresources"] = {"status": {}}
    return entry


def crd_for(classes: Iterable[type[FluxObject]]) -> dict[str, Any]:
    """The CRD serving the given classes (all versions of one kind)."""
    versions = sorted(classes, key=lambda c: c.VERSION)
    storage = [c for c in versions if c.STORAGE]
    if len(storage) != 1:
        raise SchemaError(f"{versions[0].KIND}: exactly one storage version required, got {len(storage)}")
    cls = storage[0]
    names: dict[str, Any] = {
        "categories": list(cls.CATEGORIES),
        "kind": cls.KIND,
        "listKind": f"{cls.KIND}List",
        "plural": cls.PLURAL,
    }
    if cls.SHORT_NAMES:
        names["shortNames"] = list(cls.SHORT_NAMES)
    names["singular"] = cls.SINGULAR
    metadata: dict[str, Any] = {"name": f"{cls.PLURAL}.{cls.GROUP}"}
    if cls.CRD_ANNOTATIONS:
        metadata["annotations"] = dict(sorted(cls.CRD_ANNOTATIONS.items()))
    metadata["labels"] = {"app.kubernetes.io/part-of": "sluice"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "conversion": {"strategy": "None"},
            "group": cls.GROUP,
            "names": names,
            "scope": "Namespaced" if cls.NAMESPACED else "Cluster",
            "versions": [_version_entry(c) for c in versions],
        },
    }


def crd_documents() -> list[dict[str, Any]]:
    """One CRD per kind, in a stable order (by group, then plural)."""
    by_kind: dict[tuple[str, str], list[type[FluxObject]]] = {}
    for cls in ALL_KINDS:
        by_kind.setdefault((cls.GROUP, cls.KIND), []).append(cls)
    crds = [crd_for(classes) for classes in by_kind.values()]
    return sorted(crds, key=lambda crd: (crd["spec"]["group"], crd["spec"]["names"]["plural"]))


def file_name(crd: dict[str, Any]) -> str:
    """`<group>_<plural>.yaml`, as Flux names its CRD files."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Never emits anchors/aliases, so equal sub-schemas are written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


CRD_LABELS: tuple[tuple[str, str], ...] = (
    ("app.kubernetes.io/part-of", "sluice"),
    ("app.kubernetes.io/instance", "flux-system"),
    ("app.kubernetes.io/component", "crds"),
)


def render_crd_files() -> dict[str, str]:
    """File name -> YAML text for every CRD plus a `kustomization.yaml` listing them."""
    files: dict[str, str] = {}
    for crd in crd_documents():
        files[file_name(crd)] = HEADER + "---\n" + _dump(crd)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # The labels every object Sluice installs carries (deploy/k8s layout contract), so
        # `kubectl get crds -l app.kubernetes.io/part-of=sluice` finds them; not selectors.
        "labels": [{"pairs": dict(CRD_LABELS), "includeSelectors": False}],
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = HEADER + _dump(kustomization)
    return dict(sorted(files.items()))


def write_crd_files(directory: Path = CRD_DIR) -> list[Path]:
    """Write `render_crd_files()` into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_crd_files().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else CRD_DIR
    for path in write_crd_files(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
