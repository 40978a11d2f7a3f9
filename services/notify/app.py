"""The notify service: Provider, Alert and Receiver: routes event.* records to providers and turns webhooks into reconcile.request."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import Provider
from libs.common.api.notification.receiver import Receiver
from libs.common.app import App, ServiceSpec
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "notify"


class NotifySettings(Settings):
    service_name: str = Field("sluice-notify", description="Name in logs, traces and metrics.")
    receiver_addr: str = Field(
        "0.0.0.0:9292",
        description="host:port of the webhook receiver (paths /hook/<sha256>), as Flux's :9292.",
    )


async def setup(app: App) -> None:
    """Serve the webhook endpoint. Receivers are not reconciled yet, so no path is known: every
    call gets 404 and changes nothing (never a pretend success)."""

    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"error": "no Receiver is served at this path"}, status=404)

    receiver = web.Application()
    receiver.router.add_post("/hook/{digest}", hook)
    url = await app.serve_http(receiver, app.settings.receiver_addr)
    app.runtime.log.info("serving webhooks", extra={"url": url})


SPEC = ServiceSpec(
    SERVICE,
    NotifySettings,
    reconcilers=lambda app: [
        unimplemented(Provider, SERVICE),
        unimplemented(Alert, SERVICE),
        unimplemented(Receiver, SERVICE),
    ],
    setup=setup,
)
