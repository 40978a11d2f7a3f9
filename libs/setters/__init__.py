"""Flux image-policy setters: rewrite `# {"$imagepolicy": "ns:name[:tag|:name|:digest]"}` marked
YAML scalars byte-exactly, record what changed (Flux's `update.Result`), and render commit message
templates (a safe subset of Go text/template) over that data."""

from libs.setters.markers import (
    MARKER_TOKEN,
    Change,
    ImageRef,
    ObjectIdentifier,
    Result,
    SetterError,
    apply_setters,
    update_text,
)
from libs.setters.template import FUNCTIONS, TemplateError, format_value, render, uses_field

__all__ = [
    "FUNCTIONS",
    "MARKER_TOKEN",
    "Change",
    "ImageRef",
    "ObjectIdentifier",
    "Result",
    "SetterError",
    "TemplateError",
    "apply_setters",
    "format_value",
    "render",
    "update_text",
    "uses_field",
]
