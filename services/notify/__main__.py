"""The notify service: Provider, Alert and Receiver: routes event.* records to providers and turns webhooks into reconcile.request."""

from __future__ import annotations

from pydantic import Field

from libs.common.api.notification.alert import Alert
from libs.common.api.notification.provider import Provider
from libs.common.api.notification.receiver import Receiver
from libs.common.app import run
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings

SERVICE = "notify"


class NotifySettings(Settings):
    service_name: str = Field("sluice-notify", description="Name in logs, traces and metrics.")


def main() -> None:
    run(
        NotifySettings,
        SERVICE,
        reconcilers=[
            unimplemented(Provider, SERVICE),
            unimplemented(Alert, SERVICE),
            unimplemented(Receiver, SERVICE),
        ],
    )


if __name__ == "__main__":
    main()
