"""Structural-schema handling for custom resources: pruning, defaulting and validation.

Follows what the real API server does with a CRD version's `openAPIV3Schema`: unknown fields are
dropped silently (unless `x-kubernetes-preserve-unknown-fields`), `default:` values are filled in,
then the object is validated; violations become 422 causes with field paths like `spec.url`.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from typing import Any

from .errors import cause

JSON = dict[str, Any]

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def fmt_value(value: Any) -> str:
    """Render a value the way Go's field errors do (strings quoted, numbers bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune(
    value: Any, schema: JSON, root: bool = False, path: str = "", dropped: list[str] | None = None
) -> Any:
    """Drop fields the schema does not know (in place), keeping preserved and embedded parts.

    The paths of dropped fields (`spec.foo`, `spec.items[0].bar`) are appended to `dropped`.
    """
    if isinstance(value, dict):
        props: JSON = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if (root or embedded) and key in _ROOT_KEEP:
                continue
            if key in props:
                prune(value[key], props[key], False, _join(path, key), dropped)
            elif isinstance(additional, dict):
                prune(value[key], additional, False, _join(path, key), dropped)
            elif additional is True or preserve:
                continue
            else:
                del value[key]
                if dropped is not None:
                    dropped.append(_join(path, key))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                prune(item, items, False, f"{path}[{index}]", dropped)
    return value


def apply_defaults(value: Any, schema: JSON, root: bool = False) -> Any:
    """Fill in `default:` values for absent properties of present objects (in place)."""
    if isinstance(value, dict):
        props: JSON = schema.get("properties") or {}
        for key, sub in props.items():
            if root and key == "metadata":
                continue
            if "default" in sub and (key not in value or (value[key] is None and not sub.get("nullable"))):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in props:
                    apply_defaults(value[key], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(item, items)
    return value


def validate(value: Any, schema: JSON, path: str = "", root: bool = False) -> list[JSON]:
    """Validate against a structural schema; returns Status causes (empty when valid)."""
    errors: list[JSON] = []
    _validate(value, schema, path, errors, root)
    return errors


def _type_ok(value: Any, expected: str) -> bool:
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return actual == expected


def _validate(value: Any, schema: JSON, path: str, errors: list[JSON], root: bool) -> None:
    shown = path or "<root>"
    if value is None:
        if schema.get("nullable") or (
            not schema.get("type") and not schema.get("x-kubernetes-int-or-string")
        ):
            return
        errors.append(
            cause(
                "FieldValueTypeInvalid",
                shown,
                f'Invalid value: "null": {shown} in body must be of type {schema.get("type", "string")}: "null"',
            )
        )
        return
    if schema.get("x-kubernetes-int-or-string") and (
        isinstance(value, bool) or not isinstance(value, int | str)
    ):
        errors.append(
            cause(
                "FieldValueTypeInvalid",
                shown,
                f'Invalid value: "{json_type(value)}": {shown} in body must be of type integer,string: "{json_type(value)}"',
            )
        )
        return
    expected = schema.get("type")
    if expected and not _type_ok(value, expected):
        errors.append(
            cause(
                "FieldValueTypeInvalid",
                shown,
                f'Invalid value: "{json_type(value)}": {shown} in body must be of type {expected}: "{json_type(value)}"',
            )
        )
        return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(fmt_value(v) for v in enum)
        errors.append(
            cause(
                "FieldValueNotSupported",
                shown,
                f"Unsupported value: {fmt_value(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, str):
        _validate_string(value, schema, shown, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, shown, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, shown, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, shown, errors, root)


def _validate_string(value: str, schema: JSON, shown: str, errors: list[JSON]) -> None:
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        errors.append(
            cause(
                "FieldValueInvalid",
                shown,
                f"Invalid value: {fmt_value(value)}: {shown} in body should match '{pattern}'",
            )
        )
    min_len = schema.get("minLength")
    if min_len is not None and len(value) < min_len:
        errors.append(
            cause(
                "FieldValueInvalid",
                shown,
                f"Invalid value: {fmt_value(value)}: {shown} in body should be at least {min_len} chars long",
            )
        )
    max_len = schema.get("maxLength")
    if max_len is not None and len(value) > max_len:
        errors.append(cause("FieldValueTooLong", shown, f"Too long: may not be more than {max_len} bytes"))
    if schema.get("format") == "date-time" and not _is_date_time(value):
        errors.append(
            cause(
                "FieldValueInvalid",
                shown,
                f"Invalid value: {fmt_value(value)}: {shown} in body must be of type date-time: {fmt_value(value)}",
            )
        )


def _is_date_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in value.upper() or " " in value


def _validate_number(value: float, schema: JSON, shown: str, errors: list[JSON]) -> None:
    minimum = schema.get("minimum")
    if minimum is not None:
        exclusive = bool(schema.get("exclusiveMinimum"))
        if value < minimum or (exclusive and value == minimum):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(
                cause(
                    "FieldValueInvalid",
                    shown,
                    f"Invalid value: {fmt_value(value)}: {shown} in body should be {relation} {fmt_value(minimum)}",
                )
            )
    maximum = schema.get("maximum")
    if maximum is not None:
        exclusive = bool(schema.get("exclusiveMaximum"))
        if value > maximum or (exclusive and value == maximum):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(
                cause(
                    "FieldValueInvalid",
                    shown,
                    f"Invalid value: {fmt_value(value)}: {shown} in body should be {relation} {fmt_value(maximum)}",
                )
            )


def _validate_array(value: list[Any], schema: JSON, path: str, shown: str, errors: list[JSON]) -> None:
    min_items = schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        errors.append(
            cause(
                "FieldValueInvalid",
                shown,
                f"Invalid value: {len(value)}: {shown} in body should have at least {min_items} items",
            )
        )
    max_items = schema.get("maxItems")
    if max_items is not None and len(value) > max_items:
        errors.append(
            cause("FieldValueTooMany", shown, f"Too many: {len(value)}: must have at most {max_items} items")
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", errors, False)


def _validate_object(
    value: JSON, schema: JSON, path: str, shown: str, errors: list[JSON], root: bool
) -> None:
    props: JSON = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(cause("FieldValueRequired", _join(path, key), "Required value"))
    for key, item in value.items():
        if root and key in _ROOT_KEEP:
            continue
        if key in props:
            _validate(item, props[key], _join(path, key), errors, False)
        elif isinstance(schema.get("additionalProperties"), dict):
            _validate(item, schema["additionalProperties"], _join(path, key), errors, False)
    min_props = schema.get("minProperties")
    if min_props is not None and len(value) < min_props:
        errors.append(
            cause(
                "FieldValueInvalid",
                shown,
                f"Invalid value: {len(value)}: {shown} in body should have at least {min_props} properties",
            )
        )
    max_props = schema.get("maxProperties")
    if max_props is not None and len(value) > max_props:
        errors.append(
            cause("FieldValueTooMany", shown, f"Too many: {len(value)}: must have at most {max_props} items")
        )
