"""The source service: GitRepository, OCIRepository, HelmRepository, HelmChart and Bucket: fetches sources and publishes artifact.ready."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from pydantic import Field

from libs.common.api.source.bucket import Bucket
from libs.common.api.source.helmchart import HelmChart
from libs.common.api.source.helmrepository import HelmRepository
from libs.common.api.source.ocirepository import OCIRepository
from libs.common.app import App, ServiceSpec
from libs.common.artifacts import artifact_app, store_from_url
from libs.common.reconcile import Reconciler
from libs.common.reconcile.unimplemented import unimplemented
from libs.common.runtime.settings import Settings
from libs.git import Git, MirrorCache
from services.source.gitrepository import GitRepositorySource

SERVICE = "source"


class SourceSettings(Settings):
    service_name: str = Field("sluice-source", description="Name in logs, traces and metrics.")
    artifact_addr: str = Field(
        "0.0.0.0:9090", description="host:port where artifacts are served over HTTP (status.artifact.url)."
    )
    git_cache_dir: str = Field(
        "/var/cache/sluice/git",
        description=(
            "Directory of the shared Git cache: one bare mirror per repository URL, so a new revision "
            "is fetched as a delta instead of a fresh clone."
        ),
    )
    allow_file_urls: bool = Field(
        False,
        description=(
            "Accept file:// GitRepository URLs (repositories on this service's filesystem). Off by default: "
            "in a shared cluster it would expose the pod's files; `sluice up` turns it on for its Git root."
        ),
    )
    git_cache_max_idle: float = Field(
        604800.0,
        ge=0.0,
        description="Seconds a cached mirror may go unused before it is deleted (checked hourly; 0 = never).",
    )


def _new_git_source(app: App) -> GitRepositorySource:
    """The GitRepository machinery of one running app, shared by its reconciler and setup hook."""
    commands = Counter(
        "sluice_git_commands_total",
        "git commands run by the source service, by subcommand and outcome (ok, error, timeout).",
        ["command", "outcome"],
        registry=app.runtime.metrics.registry,
    )
    git = Git(observe=lambda command, outcome: commands.labels(command, outcome).inc())
    settings = app.settings
    return GitRepositorySource(
        store=store_from_url(settings.artifact_store),
        cache=MirrorCache(Path(settings.git_cache_dir), git),
        bus=app.bus,
        kube=app.kube,
        base_url=settings.artifact_base_url,
        allow_file_urls=settings.allow_file_urls,
    )


def git_source(app: App) -> GitRepositorySource:
    """The app's GitRepository reconciler state (one per app)."""
    return app.shared(_new_git_source)


def public_url(bound: str) -> str:
    """The served address as other pods reach it: a wildcard bind becomes this host's name."""
    for wildcard in ("0.0.0.0", "[::]", "::"):
        prefix = f"http://{wildcard}:"
        if bound.startswith(prefix):
            return f"http://{socket.gethostname()}:{bound[len(prefix) :]}"
    return bound


async def _prune_cache(app: App, source: GitRepositorySource, max_idle: float) -> None:
    """Delete mirrors of URLs nobody fetched for `max_idle` seconds, hourly (or more often)."""
    while True:
        try:
            deleted = await source.cache.prune(max_idle)
            if deleted:
                app.runtime.log.info("pruned idle git mirrors", extra={"count": len(deleted)})
        except Exception as exc:
            app.runtime.log.warning("pruning the git cache failed: %s", exc)
        await asyncio.sleep(min(max_idle, 3600.0))


async def setup(app: App) -> None:
    """Serve the artifact store over HTTP, as Flux's source-controller does on :9090, and consume
    git.commit (fetch at once) and artifact.ready (rebuild GitRepositories that include another)."""
    store = store_from_url(app.settings.artifact_store)
    url = await app.serve_http(artifact_app(store), app.settings.artifact_addr)
    source = git_source(app)
    source.set_base_url(public_url(url))
    source.subscribe()
    max_idle = float(app.settings.git_cache_max_idle)
    if max_idle > 0:
        pruner = asyncio.create_task(_prune_cache(app, source, max_idle), name="git-cache-prune")

        async def stop_pruner() -> None:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner

        app.cleanups.append(stop_pruner)
    app.runtime.log.info("serving artifacts", extra={"url": url, "base_url": source.base_url})


def reconcilers(app: App) -> list[Reconciler[Any]]:
    return [
        git_source(app).reconciler(),
        unimplemented(OCIRepository, SERVICE),
        unimplemented(HelmRepository, SERVICE),
        unimplemented(HelmChart, SERVICE),
        unimplemented(Bucket, SERVICE),
    ]


SPEC = ServiceSpec(SERVICE, SourceSettings, reconcilers=reconcilers, setup=setup)
