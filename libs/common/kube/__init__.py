"""Kubernetes access — the only module that imports `kubernetes`."""

from libs.common.kube.client import (
    Conflict,
    Gone,
    Invalid,
    Kube,
    KubeError,
    NotFound,
    Obj,
    Resource,
    WatchEvent,
)
from libs.common.kube.secrets import secret_data

__all__ = [
    "Conflict",
    "Gone",
    "Invalid",
    "Kube",
    "KubeError",
    "NotFound",
    "Obj",
    "Resource",
    "WatchEvent",
    "secret_data",
]
