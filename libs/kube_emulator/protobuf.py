"""Decoding the few Kubernetes protobuf request bodies kubectl sends for simple `create` commands.

kubectl's typed clients send `application/vnd.kubernetes.protobuf`: `kubectl create namespace`,
`create configmap`, `create secret generic`, `create serviceaccount`. The emulator speaks JSON; this
module turns those bodies (the `k8s\\0` envelope holding a `runtime.Unknown`) into the equivalent
JSON objects for exactly these kinds. Any other protobuf body stays 415 UnsupportedMediaType.
"""

from __future__ import annotations

import base64
from typing import Any

JSON = dict[str, Any]
MAGIC = b"k8s\x00"

# message name -> field number -> (json name, type); types: str, bytes, bool, int, map_ss, map_sb,
# rstr (repeated string) and "msg:<Name>" / "rmsg:<Name>" (one / repeated sub-message)
_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "msg:TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "str"),
        4: ("contentType", "str"),
    },
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        5: ("uid", "str"),
        6: ("resourceVersion", "str"),
        7: ("generation", "int"),
        11: ("labels", "map_ss"),
        12: ("annotations", "map_ss"),
        13: ("ownerReferences", "rmsg:OwnerReference"),
        14: ("finalizers", "rstr"),
    },
    "OwnerReference": {
        1: ("kind", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "rstr")},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map_ss"),
        3: ("binaryData", "map_sb"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map_sb"),
        3: ("type", "str"),
        4: ("stringData", "map_ss"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("secrets", "rmsg:ObjectReference"),
        3: ("imagePullSecrets", "rmsg:LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "str"),
        2: ("namespace", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("resourceVersion", "str"),
        7: ("fieldPath", "str"),
    },
    "LocalObjectReference": {1: ("name", "str")},
    # `kubectl auth can-i` asks with a protobuf SelfSubjectAccessReview (answered under RBAC)
    "SelfSubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("spec", "msg:SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes"),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "str"),
        2: ("verb", "str"),
        3: ("group", "str"),
        4: ("version", "str"),
        5: ("resource", "str"),
        6: ("subresource", "str"),
        7: ("name", "str"),
    },
    "NonResourceAttributes": {1: ("path", "str"), 2: ("verb", "str")},
}

SUPPORTED_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, item in _fields(raw):
        if number == 1 and isinstance(item, bytes):
            key = item.decode()
        elif number == 2 and isinstance(item, bytes):
            value = item
    return key, value


def _message(name: str, data: bytes) -> JSON:
    spec = _MESSAGES[name]
    out: JSON = {}
    for number, value in _fields(data):
        if number not in spec:
            continue
        field, ftype = spec[number]
        if ftype == "str" and isinstance(value, bytes):
            out[field] = value.decode()
        elif ftype == "bytes" and isinstance(value, bytes):
            out[field] = value
        elif ftype == "bool" and isinstance(value, int):
            out[field] = bool(value)
        elif ftype == "int" and isinstance(value, int):
            out[field] = value
        elif ftype == "rstr" and isinstance(value, bytes):
            out.setdefault(field, []).append(value.decode())
        elif ftype in ("map_ss", "map_sb") and isinstance(value, bytes):
            key, raw = _map_entry(value)
            decoded = raw.decode() if ftype == "map_ss" else base64.b64encode(raw).decode()
            out.setdefault(field, {})[key] = decoded
        elif ftype.startswith("msg:") and isinstance(value, bytes):
            out[field] = _message(ftype[4:], value)
        elif ftype.startswith("rmsg:") and isinstance(value, bytes):
            out.setdefault(field, []).append(_message(ftype[5:], value))
        else:
            raise ProtobufError(f"field {number} of {name} has an unexpected wire type")
    return out


def decode(body: bytes) -> JSON:
    """A protobuf-encoded object as JSON; ProtobufError when it is not one of the supported kinds."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    unknown = _message("Unknown", body[len(MAGIC) :])
    type_meta = unknown.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if (api_version, kind) not in SUPPORTED_KINDS:
        raise ProtobufError(f"protobuf bodies of {api_version}/{kind} are not supported")
    if unknown.get("contentEncoding"):
        raise ProtobufError("encoded protobuf bodies are not supported")
    obj = _message(kind, unknown.get("raw", b""))
    return {"apiVersion": api_version, "kind": kind, **obj}
