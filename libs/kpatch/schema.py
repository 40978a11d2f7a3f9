"""Merge metadata of Kubernetes kinds, read from OpenAPI v2 definitions.

The metadata lives in data, not code: ``openapi.yaml`` next to this module is an excerpt of the
Kubernetes OpenAPI v2 document. :class:`SchemaRegistry` reads that excerpt, or a whole
``swagger.json`` handed in by the caller, and :class:`FieldSchema` walks it field by field:

>>> deployment = schema_for("apps/v1", "Deployment")
>>> containers = deployment.child("spec").child("template").child("spec").child("containers")
>>> containers.merge_key, containers.map_keys, containers.items().child("ports").map_keys
('name', ('name',), ('containerPort', 'protocol'))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

import yaml

from libs.kpatch.errors import PatchError

SchemaType = Literal["object", "map", "list", "scalar"]

_DEFINITION_REF_PREFIX = "#/definitions/"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class FieldSchema:
    """One node of an OpenAPI schema: an object, a map, a list or a scalar, with its merge metadata.

    ``child`` and ``items`` return ``None`` where the schema says nothing; callers then fall back to
    the generic rules (maps merge, lists are atomic and replace).
    """

    __slots__ = ("_node", "_registry", "path")

    def __init__(self, registry: SchemaRegistry, node: Mapping[str, Any], path: str = "") -> None:
        self._registry = registry
        self._node = registry.resolve(node)
        self.path = path
        """Where this node sits, for messages: ``.spec.template.spec.containers[]``."""

    def __repr__(self) -> str:
        return f"FieldSchema({self.path or '.'}, type={self.type})"

    @property
    def type(self) -> SchemaType:
        """``object`` (named fields), ``map`` (free-form keys), ``list`` or ``scalar``."""
        declared = self._node.get("type")
        if declared == "array" or "items" in self._node:
            return "list"
        if "properties" in self._node:
            return "object"
        if "additionalProperties" in self._node:
            return "map"
        if declared == "object":
            return "object"
        return "scalar"

    def child(self, name: str) -> FieldSchema | None:
        """The schema of field ``name`` of an object, or of any value of a map."""
        properties = self._node.get("properties")
        if isinstance(properties, Mapping) and name in properties:
            return FieldSchema(self._registry, properties[name], f"{self.path}.{name}")
        values = self._node.get("additionalProperties")
        if isinstance(values, Mapping):
            return FieldSchema(self._registry, values, f"{self.path}.{name}")
        return None

    def field_names(self) -> tuple[str, ...]:
        """The fields this schema describes (an object's known properties; empty for the rest)."""
        properties = self._node.get("properties")
        return tuple(properties) if isinstance(properties, Mapping) else ()

    def items(self) -> FieldSchema | None:
        """The schema of the elements of a list."""
        items = self._node.get("items")
        if isinstance(items, Mapping):
            return FieldSchema(self._registry, items, f"{self.path}[]")
        return None

    @property
    def list_type(self) -> str | None:
        """Server-side apply list semantics: ``atomic``, ``set`` or ``map``; ``None`` if not a list.

        As server-side apply reads OpenAPI (kube-openapi's schemaconv): ``x-kubernetes-list-type``
        if present, else a list with patch strategy ``merge`` is a ``map`` keyed by its patch merge
        key (a ``set`` without one), else ``atomic``.
        """
        if self.type != "list":
            return None
        declared = self._node.get("x-kubernetes-list-type")
        if declared is not None:
            return str(declared)
        if "merge" in self.strategies:
            return "map" if self.merge_key else "set"
        return "atomic"

    @property
    def map_keys(self) -> tuple[str, ...]:
        """The fields identifying an element of a ``map`` list in server-side apply."""
        declared = self._node.get("x-kubernetes-list-map-keys")
        if declared is not None:
            return tuple(str(key) for key in declared)
        if self.list_type == "map" and "x-kubernetes-list-type" not in self._node and self.merge_key:
            return (self.merge_key,)
        return ()

    @property
    def map_type(self) -> str | None:
        """Server-side apply map semantics for objects and maps: ``atomic`` or ``granular`` (the default)."""
        if self.type not in ("object", "map"):
            return None
        return str(self._node.get("x-kubernetes-map-type", "granular"))

    @property
    def merge_key(self) -> str | None:
        """The strategic-merge-patch ``patchMergeKey`` of a list of objects."""
        key = self._node.get("x-kubernetes-patch-merge-key")
        return None if key is None else str(key)

    @property
    def strategy(self) -> str | None:
        """The strategic-merge-patch ``patchStrategy``: ``merge``, ``replace``, ``retainKeys``, ``merge,retainKeys``."""
        strategy = self._node.get("x-kubernetes-patch-strategy")
        return None if strategy is None else str(strategy)

    @property
    def strategies(self) -> frozenset[str]:
        """``strategy`` split into its parts, e.g. ``{"merge", "retainKeys"}``."""
        return frozenset(part for part in (self.strategy or "").split(",") if part)


class SchemaRegistry:
    """OpenAPI v2 definitions indexed by name and by ``x-kubernetes-group-version-kind``."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        """``document`` is an OpenAPI v2 document, or just its ``definitions`` mapping."""
        definitions = document.get("definitions", document)
        if not isinstance(definitions, Mapping):
            raise PatchError("OpenAPI document has no 'definitions' mapping")
        self._definitions: Mapping[str, Any] = definitions
        self._by_kind: dict[tuple[str, str], str] = {}
        for name, definition in definitions.items():
            if not isinstance(definition, Mapping):
                continue
            for gvk in definition.get("x-kubernetes-group-version-kind", ()):
                group, version = gvk.get("group", ""), gvk.get("version", "")
                api_version = f"{group}/{version}" if group else str(version)
                self._by_kind.setdefault((api_version, str(gvk.get("kind", ""))), name)

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """``node`` with its ``$ref`` (or single-element ``allOf``) replaced by the definition it names.

        Keys on the referring node win over the definition's, as the OpenAPI extensions on a field
        (its list type, say) belong to the field.
        """
        reference = node.get("$ref")
        all_of = node.get("allOf")
        if reference is None and isinstance(all_of, list) and len(all_of) == 1:
            reference = all_of[0].get("$ref")
        if reference is None:
            return node
        target = self.definition_node(str(reference).removeprefix(_DEFINITION_REF_PREFIX))
        own = {key: value for key, value in node.items() if key not in ("$ref", "allOf", "description")}
        return {**target, **own}

    def definition_node(self, name: str) -> Mapping[str, Any]:
        definition = self._definitions.get(name)
        if not isinstance(definition, Mapping):
            raise PatchError(f"OpenAPI definition {name!r} is missing")
        return self.resolve(definition)

    def definition_names(self) -> tuple[str, ...]:
        return tuple(self._definitions)

    def definition(self, name: str) -> FieldSchema:
        """The schema of one named definition, e.g. ``io.k8s.api.core.v1.PodSpec``."""
        return FieldSchema(self, self.definition_node(name))

    def schema_for(self, api_version: str, kind: str) -> FieldSchema | None:
        """The schema of a whole object of this kind, or ``None`` if the kind is not described."""
        name = self._by_kind.get((api_version, kind))
        return None if name is None else self.definition(name)

    def generic_object_schema(self) -> FieldSchema:
        """A schema that knows only ``metadata`` (ObjectMeta): for custom resources and unknown kinds."""
        node = {"type": "object", "properties": {"metadata": {"$ref": _DEFINITION_REF_PREFIX + _OBJECT_META}}}
        return FieldSchema(self, node)


@functools.cache
def builtin_registry() -> SchemaRegistry:
    """The registry of the built-in kinds this package ships metadata for (loaded once)."""
    text = resources.files("libs.kpatch").joinpath("openapi.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if not isinstance(document, Mapping):
        raise PatchError("libs/kpatch/openapi.yaml is not a mapping")
    return SchemaRegistry(document)


def schema_for(api_version: str, kind: str) -> FieldSchema | None:
    """The merge metadata of a built-in kind (``"apps/v1"``, ``"Deployment"``); ``None`` if unknown."""
    return builtin_registry().schema_for(api_version, kind)


def object_meta_schema() -> FieldSchema:
    """The schema of ``metadata`` (ObjectMeta), valid for every kind including custom resources."""
    return builtin_registry().definition(_OBJECT_META)


def generic_object_schema() -> FieldSchema:
    """A schema for any object that knows its ``metadata`` and nothing else (custom resources)."""
    return builtin_registry().generic_object_schema()
