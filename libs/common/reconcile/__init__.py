"""The reconcile runner: ordered steps + summarize, and the controller that feeds it from watches,
intervals and `reconcile.request` events."""

from libs.common.reconcile.controller import Controller, interval_phase, object_key, request_msg_id
from libs.common.reconcile.runner import Context, Emitter, Reconciler, Result, Step, summarize

__all__ = [
    "Context",
    "Controller",
    "Emitter",
    "Reconciler",
    "Result",
    "Step",
    "interval_phase",
    "object_key",
    "request_msg_id",
    "summarize",
]
