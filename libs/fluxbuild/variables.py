"""Variables from the ConfigMaps and Secrets named by ``postBuild.substituteFrom``.

Flux reads a ConfigMap's ``data`` and a Secret's ``data`` (base64-decoded); ``binaryData`` and
``stringData`` are not variables. The caller fetches the objects; these helpers only decode.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from libs.fluxbuild.errors import FluxBuildError


def configmap_variables(obj: Mapping[str, Any]) -> dict[str, str]:
    """The ``data`` of a ConfigMap as variables."""
    data = obj.get("data") or {}
    return {str(k): str(v) for k, v in data.items()}


def secret_variables(obj: Mapping[str, Any]) -> dict[str, str]:
    """The ``data`` of a Secret, base64-decoded, as variables (the values never appear in errors)."""
    name = (obj.get("metadata") or {}).get("name", "")
    out: dict[str, str] = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise FluxBuildError(
                f"substitute from 'Secret/{name}' error: key {key!r} is not base64-encoded UTF-8 text"
            ) from None
    return out
