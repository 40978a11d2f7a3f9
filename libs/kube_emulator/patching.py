"""Decoding PATCH bodies and applying them with `libs.kpatch` (merge, JSON patch, strategic merge)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from . import errors as E
from .kinds import ResourceType

JSON = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise E.bad_request(f"error decoding patch: {exc}")


def decode_apply(raw: bytes) -> JSON:
    """Apply bodies are YAML (JSON being a subset of it)."""
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise E.bad_request(f"error decoding YAML: {exc}")
    if not isinstance(doc, dict):
        raise E.bad_request("apply requests must carry exactly one object")
    return doc


def apply_patch(rt: ResourceType, current: JSON, content_type: str, raw: bytes) -> JSON:
    from libs import kpatch

    patch = decode_json(raw)
    try:
        if content_type == MERGE:
            if not isinstance(patch, dict):
                raise E.bad_request("a merge patch must be a JSON object")
            result = kpatch.merge_patch(current, patch)
        elif content_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise E.bad_request("a JSON patch must be a JSON array of operations")
            result = kpatch.json_patch(current, patch)
        elif content_type == STRATEGIC:
            if rt.is_custom:
                raise E.unsupported_media_type(content_type)
            if not isinstance(patch, dict):
                raise E.bad_request("a strategic merge patch must be a JSON object")
            schema = kpatch.schema_for(rt.api_version(), rt.kind)
            result = kpatch.strategic_merge_patch(current, patch, schema)
        else:
            raise E.unsupported_media_type(content_type)
    except kpatch.PatchError as exc:
        raise E.ApiError(422, "Invalid", str(exc))
    if not isinstance(result, dict):
        raise E.bad_request("the patch did not produce an object")
    return result
