"""The flagship path, through all six services: a new tag in the registry reaches the cluster.

Flux's "automate image updates to Git" guide, locally: a repository with a Deployment whose image
line carries the `$imagepolicy` marker, a real docker-registry, and the GitRepository,
Kustomization, ImageRepository, ImagePolicy, ImageUpdateAutomation and Receiver objects. A tag
push plus one webhook call to the Receiver must end with the Deployment in the cluster running
the new image and the automation's commit in Git — with every interval set to an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from libs.cli.demo import deployment, guide_objects
from libs.common.kube import Kube
from libs.common.runtime.tracing import read_spans
from libs.devservers.git import head, log_messages, seed_repo, show_file
from libs.devservers.ports import free_port
from libs.devservers.registry import DockerRegistry, push_image
from services.apply.app import SPEC as APPLY
from services.build.app import SPEC as BUILD
from services.image_scan.app import SPEC as IMAGE_SCAN
from services.image_update.app import SPEC as IMAGE_UPDATE
from services.notify.app import SPEC as NOTIFY
from services.source.app import SPEC as SOURCE
from tests.harness.git_fixtures import GitServer
from tests.harness.services import RunningService, running_service
from tests.support import emulated_cluster, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "flux-system"


def notification_objects(generic_url: str, slack_url: str) -> list[dict[str, Any]]:
    """Alerts for the image kinds to a generic webhook and a Slack-format webhook, and a signed
    Receiver that a caller without the token must not be able to trigger."""
    meta = {"namespace": NS}
    sources = [{"kind": "ImagePolicy", "name": "*"}, {"kind": "ImageUpdateAutomation", "name": "*"}]
    return [
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "webhook", **meta},
            "spec": {"type": "generic", "address": generic_url},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "slack", **meta},
            "spec": {"type": "slack", "address": slack_url, "channel": "gitops"},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "webhook", **meta},
            "spec": {"providerRef": {"name": "webhook"}, "eventSeverity": "info", "eventSources": sources},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "slack", **meta},
            "spec": {"providerRef": {"name": "slack"}, "eventSeverity": "info", "eventSources": sources},
        },
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "signed", **meta},
            "spec": {
                "type": "generic-hmac",
                "secretRef": {"name": "webhook-token"},
                "resources": [
                    {
                        "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
                        "kind": "ImageRepository",
                        "name": "podinfo",
                    }
                ],
            },
        },
    ]


class Sink:
    """A real HTTP endpoint that records what notify posts to each of its paths."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self.runner = web.AppRunner(app)
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.match_info["name"], dict(request.headers), await request.json()))
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Sink:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def bodies(self, name: str) -> list[dict[str, Any]]:
        return [body for path, _, body in self.received if path == name]


def assert_one_trace(spans: list[dict[str, Any]]) -> None:
    """The trace of the automation's push holds the Receiver's request and every later hop."""
    pushes = [s for s in spans if s["name"] == "git.commit publish" and s["service"] == "sluice-image-update"]
    assert pushes, "image-update published git.commit inside a span"
    trace = [s for s in spans if s["trace_id"] == pushes[-1]["trace_id"]]
    hops = {(s["service"].removeprefix("sluice-"), s["name"]) for s in trace}
    expected = {
        ("notify", "reconcile.request publish"),  # the Receiver asking for a scan
        ("image-scan", "reconcile ImageRepository"),
        ("image-scan", "image.tag publish"),
        ("image-update", "image.tag process"),
        ("source", "reconcile GitRepository"),
        ("build", "build.ready publish"),
        ("apply", "reconcile Kustomization"),
    }
    roots = [(s["service"], s["name"]) for s in trace if not s.get("parent_span_id")]
    assert expected <= hops, f"missing from the trace: {sorted(expected - hops)}; its roots: {roots}"


def _metric(text: str, prefix: str) -> float:
    """The sum of the samples whose line starts with `prefix` in a Prometheus text exposition."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


async def test_a_new_tag_reaches_the_cluster(nats_url: str, git_server: GitServer, tmp_path: Path) -> None:
    with DockerRegistry(tmp_path / "registry") as registry:
        image = f"{registry.host}/podinfo"
        await asyncio.to_thread(push_image, registry.url, "podinfo", "1.0.0")
        bare, git_url = git_server.new_repo("fleet")
        await asyncio.to_thread(
            seed_repo, git_url, {"clusters/demo/podinfo.yaml": deployment(f"{image}:1.0.0")}
        )
        async with emulated_cluster(tmp_path) as cluster:
            kube, kubeconfig = cluster.kube, cluster.kubeconfig
            receiver_port = free_port()
            spans_file = tmp_path / "spans.jsonl"
            common = {"nats_url": nats_url, "kubeconfig": kubeconfig, "otel_exporter": f"file:{spans_file}"}
            services: dict[str, RunningService] = {}
            async with contextlib.AsyncExitStack() as stack:
                sink = await stack.enter_async_context(Sink())
                for spec, extra in (
                    (
                        SOURCE,
                        {
                            "artifact_addr": "127.0.0.1:0",
                            "artifact_store": f"file://{tmp_path / 's'}",
                            "git_cache_dir": str(tmp_path / "gc"),
                            "allow_file_urls": True,
                        },
                    ),
                    (
                        BUILD,
                        {"artifact_addr": "127.0.0.1:0", "artifact_store": f"file://{tmp_path / 'b'}"},
                    ),
                    (APPLY, {}),
                    (IMAGE_SCAN, {"artifact_store": f"file://{tmp_path / 'tags'}"}),
                    (IMAGE_UPDATE, {"git_cache_dir": str(tmp_path / "iu"), "allow_file_urls": True}),
                    (NOTIFY, {"receiver_addr": f"127.0.0.1:{receiver_port}"}),
                ):
                    services[spec.name] = await stack.enter_async_context(
                        running_service(spec, **common, **extra)
                    )
                for obj in [
                    *guide_objects(git_url, image),
                    *notification_objects(sink.url("webhook"), sink.url("slack")),
                ]:
                    await kube.create(obj)

                async def running(tag: str) -> bool:
                    obj = await kube.get("apps/v1", "Deployment", "podinfo", "default")
                    containers = ((obj or {}).get("spec") or {}).get("template", {}).get("spec", {})
                    return bool(obj) and containers["containers"][0]["image"] == f"{image}:{tag}"

                await eventually(lambda: running("1.0.0"), timeout=60, what="the first image applied")
                receiver = await eventually(
                    lambda: kube.get("notification.toolkit.fluxcd.io/v1", "Receiver", "registry", NS),
                    what="the Receiver",
                )

                async def webhook_path() -> str | None:
                    obj = await kube.get("notification.toolkit.fluxcd.io/v1", "Receiver", "registry", NS)
                    return ((obj or {}).get("status") or {}).get("webhookPath")

                path = await eventually(webhook_path, what="the Receiver's webhook path")
                del receiver

                # Let the automation settle on 1.0.0 first: image-update batches image.tag events
                # for 200 ms, and a change joining the initial batch would share that batch's trace.
                async def automation_settled() -> bool:
                    obj = await kube.get(
                        "image.toolkit.fluxcd.io/v1", "ImageUpdateAutomation", "flux-system", NS
                    )
                    observed = ((obj or {}).get("status") or {}).get("observedPolicies") or {}
                    return (observed.get("podinfo") or {}).get("tag") == "1.0.0"

                await eventually(automation_settled, what="the automation's first run")

                # ... and let image-update finish with the policy's first image.tag (1.0.0): its batch
                # and the run it triggers. A run still pending from it would, level-triggered, also
                # find 1.0.1 and commit it inside the older trace.
                def image_update_idle() -> bool:
                    text = services["image_update"].runtime.metrics.render().decode()
                    consumed = _metric(text, 'sluice_events_consumed_total{event="image.tag",outcome="ok"}')
                    runs = _metric(
                        text, 'sluice_reconcile_duration_seconds_count{kind="ImageUpdateAutomation"'
                    )
                    return consumed >= 1 and runs >= 2

                await eventually(image_update_idle, what="image-update done with the first image.tag")

                # A caller without the token cannot trigger anything through the signed Receiver.
                async def signed_path() -> str | None:
                    obj = await kube.get("notification.toolkit.fluxcd.io/v1", "Receiver", "signed", NS)
                    return ((obj or {}).get("status") or {}).get("webhookPath")

                bad_path = await eventually(signed_path, what="the signed Receiver's path")
                repo_before = await kube.get("image.toolkit.fluxcd.io/v1", "ImageRepository", "podinfo", NS)
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        f"http://127.0.0.1:{receiver_port}{bad_path}",
                        data=b'{"tag": "9.9.9"}',
                        headers={"X-Signature": "sha256=" + "0" * 64},
                    ) as resp,
                ):
                    assert resp.status == 401
                repo_after = await kube.get("image.toolkit.fluxcd.io/v1", "ImageRepository", "podinfo", NS)
                annotations = lambda obj: (obj or {}).get("metadata", {}).get("annotations")  # noqa: E731
                assert annotations(repo_after) == annotations(repo_before), "a bad signature changed nothing"

                # The guide's flow: a new tag is pushed and the registry calls the Receiver.
                await asyncio.to_thread(push_image, registry.url, "podinfo", "1.0.1")
                started = time.monotonic()
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        f"http://127.0.0.1:{receiver_port}{path}", json={"push_data": {"tag": "1.0.1"}}
                    ) as resp,
                ):
                    assert resp.status == 200, await resp.text()
                try:
                    await eventually(lambda: running("1.0.1"), timeout=30, what="the new tag in the cluster")
                except AssertionError:
                    await _dump_status(kube)
                    raise
                took = time.monotonic() - started

                assert f"{image}:1.0.1" in show_file(bare, "clusters/demo/podinfo.yaml")
                messages = log_messages(bare, "main")
                assert any(f"{image}:1.0.0 -> {image}:1.0.1" in m for m in messages), messages
                automation = await kube.get(
                    "image.toolkit.fluxcd.io/v1", "ImageUpdateAutomation", "flux-system", NS
                )
                assert (automation or {}).get("status", {}).get("lastPushCommit") == head(bare, "main")
                assert took < 10, f"tag → cluster took {took:.1f}s"

                # The Alerts reached both webhooks, each in its provider's format.
                def delivered(name: str) -> list[dict[str, Any]]:
                    return sink.bodies(name)

                generic = await eventually(
                    lambda: [b for b in delivered("webhook") if "1.0.1" in b.get("message", "")],
                    what="the generic webhook's alert about 1.0.1",
                )
                assert generic[0]["involvedObject"]["kind"] in ("ImagePolicy", "ImageUpdateAutomation")
                assert generic[0]["severity"] == "info" and generic[0]["reportingController"]
                slack = await eventually(
                    lambda: [b for b in delivered("slack") if "1.0.1" in str(b.get("attachments"))],
                    what="the Slack-format alert about 1.0.1",
                )
                assert slack[0]["channel"] == "gitops"
                assert slack[0]["attachments"][0]["text"]

            # One trace follows the change from the Receiver through every service to the cluster
            # (the services have stopped, so every span is flushed to the file).
            assert_one_trace(read_spans(spans_file))


async def _dump_status(kube: Kube) -> None:
    """Print where the chain stopped, object by object."""
    for api_version, kind, name in (
        ("notification.toolkit.fluxcd.io/v1", "Receiver", "registry"),
        ("image.toolkit.fluxcd.io/v1", "ImageRepository", "podinfo"),
        ("image.toolkit.fluxcd.io/v1", "ImagePolicy", "podinfo"),
        ("image.toolkit.fluxcd.io/v1", "ImageUpdateAutomation", "flux-system"),
        ("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "demo"),
    ):
        obj = await kube.get(api_version, kind, name, NS)
        status = (obj or {}).get("status") or {}
        print(kind, {k: v for k, v in status.items() if k != "conditions"}, conditions(obj).get("Ready"))
