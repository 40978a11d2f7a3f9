"""A Secret's values, decoded: what every service that reads credentials needs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """`data` (base64) and `stringData` of a Secret as bytes; `stringData` wins, as the API
    server merges it. A value that is not valid base64 is left out rather than echoed anywhere."""
    data: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            continue
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = str(value).encode()
    return data
