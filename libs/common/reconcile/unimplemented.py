"""The honest reconciler for a kind whose logic a service does not have yet.

It stalls the object with reason `NotImplemented` and a message saying so — never a pretend
success — so `kubectl get` and `sluice get` tell users exactly what is missing.
"""

from __future__ import annotations

from typing import TypeVar

from libs.common.api.meta import FluxObject
from libs.common.reconcile.runner import Context, Reconciler, Result

T = TypeVar("T", bound=FluxObject)

NOT_IMPLEMENTED = "NotImplemented"


def unimplemented(kind: type[T], service: str) -> Reconciler[T]:
    async def not_implemented(ctx: Context[T]) -> Result:
        return Result.stall(
            NOT_IMPLEMENTED,
            f"Sluice's {service} service does not reconcile {kind.KIND} yet; "
            "the object is stored and will be reconciled once support lands",
        )

    return Reconciler(kind=kind, steps=[not_implemented])
