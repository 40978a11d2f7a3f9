"""Flux-compatible API models for every kind Sluice serves, the kind registry and CRD generation.

Kinds live in one module each (`libs.common.api.<group>.<kind>`); shared types and condition
helpers in `libs.common.api.meta`; Go durations in `libs.common.api.duration`.
"""

from libs.common.api.meta import FluxObject
from libs.common.api.registry import ALL_KINDS, UnknownKind, by_name, kind_for, storage_version
from libs.common.api.validation import ValidationFailed, validate_object

__all__ = [
    "ALL_KINDS",
    "FluxObject",
    "UnknownKind",
    "ValidationFailed",
    "by_name",
    "kind_for",
    "storage_version",
    "validate_object",
]
