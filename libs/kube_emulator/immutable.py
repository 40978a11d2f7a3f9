"""Immutable fields of built-in kinds: updates that touch them are 422 Invalid like the real server.

Flux-style appliers recognise these errors ("field is immutable", "Forbidden: updates to
statefulset spec …") and recreate the object when `force` is on, so they must happen here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import cause

JSON = dict[str, Any]
Check = Callable[[JSON, JSON], list[JSON]]

_MISSING = object()


def _get(obj: JSON, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _show(value: Any) -> str:
    return "null" if value is _MISSING else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _immutable(*paths: str) -> Check:
    def check(old: JSON, new: JSON) -> list[JSON]:
        causes = []
        for path in paths:
            before, after = _get(old, path), _get(new, path)
            if before != after:
                causes.append(
                    cause("FieldValueInvalid", path, f"Invalid value: {_show(after)}: field is immutable")
                )
        return causes

    return check


_STS_MUTABLE = {
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
}


def _statefulset(old: JSON, new: JSON) -> list[JSON]:
    before = {k: v for k, v in (old.get("spec") or {}).items() if k not in _STS_MUTABLE}
    after = {k: v for k, v in (new.get("spec") or {}).items() if k not in _STS_MUTABLE}
    if before == after:
        return []
    return [
        cause(
            "FieldValueForbidden",
            "spec",
            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
            "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )
    ]


def _service(old: JSON, new: JSON) -> list[JSON]:
    before, after = _get(old, "spec.clusterIP"), _get(new, "spec.clusterIP")
    if before is _MISSING or before in ("", None) or after in (_MISSING, "", None) or before == after:
        return []
    return [
        cause(
            "FieldValueInvalid",
            "spec.clusterIPs[0]",
            f"Invalid value: {_show([after])}: may not change once set",
        )
    ]


def _immutable_data(old: JSON, new: JSON) -> list[JSON]:
    causes: list[JSON] = []
    if old.get("immutable") is True:
        for field in ("data", "binaryData"):
            if old.get(field) != new.get(field):
                causes.append(
                    cause(
                        "FieldValueForbidden", field, "Forbidden: field is immutable when `immutable` is set"
                    )
                )
        if new.get("immutable") is not True:
            causes.append(
                cause(
                    "FieldValueForbidden",
                    "immutable",
                    "Forbidden: field is immutable when `immutable` is set",
                )
            )
    return causes


def _secret(old: JSON, new: JSON) -> list[JSON]:
    return _immutable("type")(old, new) + _immutable_data(old, new)


def _pvc(old: JSON, new: JSON) -> list[JSON]:
    def comparable(obj: JSON) -> JSON:
        spec = json.loads(json.dumps(obj.get("spec") or {}))
        (spec.get("resources") or {}).pop("requests", None)
        spec.pop("volumeAttributesClassName", None)
        return dict(spec)

    if comparable(old) == comparable(new):
        return []
    return [
        cause(
            "FieldValueForbidden",
            "spec",
            "Forbidden: spec is immutable after creation except resources.requests and "
            "volumeAttributesClassName for bound claims",
        )
    ]


CHECKS: dict[tuple[str, str], Check] = {
    ("apps", "deployments"): _immutable("spec.selector"),
    ("apps", "replicasets"): _immutable("spec.selector"),
    ("apps", "daemonsets"): _immutable("spec.selector"),
    ("apps", "statefulsets"): _statefulset,
    ("batch", "jobs"): _immutable("spec.selector", "spec.template", "spec.completionMode"),
    ("", "services"): _service,
    ("", "configmaps"): _immutable_data,
    ("", "secrets"): _secret,
    ("", "persistentvolumeclaims"): _pvc,
    ("rbac.authorization.k8s.io", "rolebindings"): _immutable("roleRef"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _immutable("roleRef"),
    ("storage.k8s.io", "storageclasses"): _immutable(
        "parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"
    ),
}


def check(key: tuple[str, str], old: JSON, new: JSON) -> list[JSON]:
    """Causes for every immutable field the update changes (empty when it is allowed)."""
    found = CHECKS.get(key)
    return found(old, new) if found is not None else []
