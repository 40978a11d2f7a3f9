"""Kubernetes patch semantics as a small pure library.

- :func:`merge_patch` — RFC 7386 JSON merge patch (``application/merge-patch+json``);
- :func:`json_patch` — RFC 6902 JSON patch (``application/json-patch+json``);
- :func:`strategic_merge_patch` — strategic merge patch (``application/strategic-merge-patch+json``);
- :func:`schema_for` / :func:`object_meta_schema` — merge metadata of built-in kinds, taken from the
  Kubernetes OpenAPI (``patchStrategy``/``patchMergeKey`` and ``x-kubernetes-list-type``/``-list-map-keys``).

No function modifies its inputs; each returns a new value. Failures raise :class:`PatchError`.
"""

from libs.kpatch.errors import PatchError
from libs.kpatch.jsonpatch import json_patch, parse_pointer, resolve_pointer
from libs.kpatch.merge import merge_patch
from libs.kpatch.schema import (
    FieldSchema,
    SchemaRegistry,
    builtin_registry,
    generic_object_schema,
    object_meta_schema,
    schema_for,
)
from libs.kpatch.strategic import strategic_merge_patch

__all__ = [
    "FieldSchema",
    "PatchError",
    "SchemaRegistry",
    "builtin_registry",
    "generic_object_schema",
    "json_patch",
    "merge_patch",
    "object_meta_schema",
    "parse_pointer",
    "resolve_pointer",
    "schema_for",
    "strategic_merge_patch",
]
