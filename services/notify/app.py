"""The notify service: Provider, Alert and Receiver: routes event records to providers and turns
webhooks into reconcile.request (see alerts.py and receivers.py, and docs/notifications.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from pydantic import Field

from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import Provider
from libs.common.app import App, ServiceSpec
from libs.common.reconcile import Context, Reconciler, Result
from libs.common.runtime.settings import Settings
from services.notify.alerts import (
    UNSUPPORTED_FIELD,
    UNSUPPORTED_PROVIDER,
    AlertRouter,
    DuplicateFilter,
    alert_problems,
    provider_problems,
)
from services.notify.providers import SUPPORTED_TYPES
from services.notify.receivers import ReceiverServer

SERVICE = "notify"
INVALID_REGEX = "InvalidRegex"


class NotifySettings(Settings):
    service_name: str = Field("sluice-notify", description="Name in logs, traces and metrics.")
    receiver_addr: str = Field(
        "0.0.0.0:9292",
        description="host:port of the webhook receiver (paths /hook/<sha256>), as Flux's :9292.",
    )
    duplicate_window: float = Field(
        300.0,
        ge=0.0,
        description=(
            "Seconds during which an event with the same object, message and metadata is sent only "
            "once per Alert (Flux's --rate-limit-interval, 5m; 0 = send every duplicate)."
        ),
    )
    receiver_index_refresh: float = Field(
        10.0,
        gt=0.0,
        description="Seconds between re-reads of every Receiver's webhook path (a miss also re-reads, at most once a second).",
    )


def receivers(app: App) -> ReceiverServer:
    """The app's Receiver reconciler and webhook endpoint (one per app)."""
    return ReceiverServer(app.kube, app.bus, namespace=app.settings.watch_namespace or None)


async def check_provider(ctx: Context[Provider]) -> Result | None:
    problems = provider_problems(ctx.obj)
    if problems:
        reason = UNSUPPORTED_PROVIDER if ctx.obj.spec.type not in SUPPORTED_TYPES else UNSUPPORTED_FIELD
        return Result.stall(reason, "; ".join(problems))
    return None


async def check_alert(ctx: Context[Alert]) -> Result | None:
    problems = alert_problems(ctx.obj)
    if problems:
        return Result.stall(INVALID_REGEX, "; ".join(problems))
    return None


def reconcilers(app: App) -> list[Reconciler[Any]]:
    return [
        Reconciler(kind=Provider, steps=[check_provider]),
        Reconciler(kind=Alert, steps=[check_alert]),
        app.shared(receivers).reconciler(),
    ]


async def setup(app: App) -> None:
    """Consume event records for Alerts and serve the Receivers' webhooks."""
    settings = app.settings
    session = aiohttp.ClientSession()
    app.cleanups.append(session.close)
    router = AlertRouter(
        app.kube,
        app.bus,
        session,
        DuplicateFilter(settings.duplicate_window),
        namespace=settings.watch_namespace or None,
        controller=settings.service_name,
    )
    router.subscribe()
    server = app.shared(receivers)
    await server.refresh()
    refresher = asyncio.create_task(
        server.refresh_forever(settings.receiver_index_refresh), name="receiver-index-refresh"
    )

    async def stop_refresher() -> None:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher

    app.cleanups.append(stop_refresher)
    url = await app.serve_http(server.web_app(), settings.receiver_addr)
    app.runtime.log.info("serving webhooks", extra={"url": url})


SPEC = ServiceSpec(SERVICE, NotifySettings, reconcilers=reconcilers, setup=setup)
