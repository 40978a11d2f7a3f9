"""The image-update service: ImageUpdateAutomation: rewrites marked manifests in Git and publishes git.commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import Counter
from pydantic import Field

from libs.common.app import App, ServiceSpec
from libs.common.reconcile import Reconciler
from libs.common.runtime.settings import Settings
from libs.git import Git, MirrorCache
from services.image_update.automation import ImageUpdater

SERVICE = "image_update"


class ImageUpdateSettings(Settings):
    service_name: str = Field("sluice-image-update", description="Name in logs, traces and metrics.")
    git_cache_dir: str = Field(
        "/var/cache/sluice/image-update/git",
        description=(
            "Directory of the image-update service's Git cache: one bare mirror per repository URL, "
            "so a run checks out from a delta fetch instead of a fresh clone."
        ),
    )
    allow_file_urls: bool = Field(
        False,
        description=(
            "Accept file:// GitRepository URLs for automations (repositories on this service's "
            "filesystem). Off by default; `sluice up` turns it on for its Git root."
        ),
    )
    batch_window: float = Field(
        0.2,
        ge=0.0,
        le=60.0,
        description=(
            "Seconds image.tag events for one automation are collected before it runs, so policy "
            "changes arriving together make one commit."
        ),
    )
    push_attempts: int = Field(
        5,
        ge=1,
        le=50,
        description="Pushes tried per run when the branch moved meanwhile (each on the new head).",
    )


def updater(app: App) -> ImageUpdater:
    """The app's ImageUpdateAutomation machinery (one per app, shared by reconciler and setup)."""
    commands = Counter(
        "sluice_git_commands_total",
        "git commands run by the image-update service, by subcommand and outcome (ok, error, timeout).",
        ["command", "outcome"],
        registry=app.runtime.metrics.registry,
    )
    settings = app.settings
    git = Git(observe=lambda command, outcome: commands.labels(command, outcome).inc())
    return ImageUpdater(
        cache=MirrorCache(Path(settings.git_cache_dir), git),
        bus=app.bus,
        kube=app.kube,
        batch_window=float(settings.batch_window),
        push_attempts=int(settings.push_attempts),
        allow_file_urls=bool(settings.allow_file_urls),
    )


async def setup(app: App) -> None:
    """Consume image.tag: batch per automation, then reconcile it at once."""
    image_updater = app.shared(updater)
    image_updater.subscribe()
    app.cleanups.append(image_updater.close)


def reconcilers(app: App) -> list[Reconciler[Any]]:
    return [app.shared(updater).reconciler()]


SPEC = ServiceSpec(SERVICE, ImageUpdateSettings, reconcilers=reconcilers, setup=setup)
