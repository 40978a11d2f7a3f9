"""kstatus health rules as pure functions over Kubernetes objects (plain dicts).

The rules of sigs.k8s.io/cli-utils `kstatus`, which Flux's health checks use: `compute(obj)` says
whether an object is `Current` (reconciled and healthy), `InProgress`, `Failed`, `Terminating`
or `NotFound`, with a message a user can act on. `CustomCheck` evaluates Flux's `healthCheckExprs`
(CEL, a safe subset in `libs.kstatus.cel`) for the groups and kinds they name. No I/O: callers read the objects (the apply
service polls them, the CLI prints them, HelmRelease reuses the same rules).
"""

from libs.kstatus.cel import CelError
from libs.kstatus.custom import CustomCheck
from libs.kstatus.status import (
    CURRENT,
    FAILED,
    IN_PROGRESS,
    NOT_FOUND,
    TERMINATING,
    UNKNOWN,
    ObjectStatus,
    compute,
    is_done,
)

__all__ = [
    "CURRENT",
    "FAILED",
    "IN_PROGRESS",
    "NOT_FOUND",
    "TERMINATING",
    "UNKNOWN",
    "CelError",
    "CustomCheck",
    "ObjectStatus",
    "compute",
    "is_done",
]
