"""deploy/k8s/nats/nats.conf, run by a real nats-server: each service works as its own NATS user,
a Git commit still travels source → build → apply into the cluster, and a user is refused the
subjects and consumers of the others."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common.bus import Bus, PublishError, stream_report
from libs.common.events import ArtifactReady, GitCommit, ObjectRef
from libs.common.kube import Kube
from libs.devservers.git import commit_files, head, seed_repo
from libs.devservers.nats import NatsServer
from tests.deploy.manifests import COMPONENTS, DEPLOY
from tests.harness.git_fixtures import GitServer
from tests.harness.services import running_service
from tests.support import emulated_cluster, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = DEPLOY / "nats" / "nats.conf"
USERS = (*COMPONENTS, "cli")
NS = "flux-system"
GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"


def password_variable(user: str) -> str:
    return "NATS_PASSWORD_" + user.upper().replace("-", "_")


def passwords() -> dict[str, str]:
    return {user: f"test-{user}-{os.getpid()}" for user in USERS}


def server_env(secrets: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **{password_variable(u): p for u, p in secrets.items()}}


def permitted_durables() -> dict[str, set[str]]:
    """The durable consumers each user may pull from, read from nats.conf itself."""
    text = CONFIG.read_text()
    found: dict[str, set[str]] = {}
    for block in re.split(r"\n\s*\{\s*\n\s*user: ", text)[1:]:
        user = block.split()[0]
        found[user] = set(re.findall(r'"\$JS\.API\.CONSUMER\.MSG\.NEXT\.SLUICE\.([^".]+)"', block))
    return found


def test_nats_server_accepts_the_config_and_needs_every_password() -> None:
    ok = subprocess.run(
        ["nats-server", "-t", "-c", str(CONFIG)],
        env=server_env(passwords()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    missing = {**server_env(passwords())}
    del missing[password_variable("notify")]
    refused = subprocess.run(
        ["nats-server", "-t", "-c", str(CONFIG)], env=missing, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0
    assert password_variable("notify") in refused.stderr + refused.stdout


@dataclass
class AuthNats:
    server: NatsServer
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def log(self) -> str:
        return (self.server.store_dir / "nats-server.log").read_text(errors="replace")

    def violations(self) -> list[str]:
        return [line for line in self.log().splitlines() if " Violation - " in line]

    def consumers(self) -> set[str]:
        """Durable consumers on the stream SLUICE, from the HTTP monitor (no NATS user needed)."""
        url = f"{self.server.monitor_url}/jsz?accounts=true&streams=true&consumers=true"
        with urllib.request.urlopen(url, timeout=5) as response:
            jsz: dict[str, Any] = json.load(response)
        names: set[str] = set()
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream["name"] == "SLUICE":
                    names |= {c["name"] for c in stream.get("consumer_detail") or []}
        return names

    async def bus(self, user: str, *, password: str | None = None, connect_timeout: float = 3) -> Bus:
        return await Bus.connect(
            self.url,
            service=f"test-{user}",
            user=user,
            password=password if password is not None else self.passwords[user],
            connect_timeout=connect_timeout,
        )


@pytest.fixture
def auth_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthNats]:
    secrets = passwords()
    server = NatsServer(tmp_path_factory.mktemp("nats-auth"), config_file=CONFIG, env=server_env(secrets))
    server.start()
    try:
        yield AuthNats(server, secrets)
    finally:
        server.stop()


def _service_settings(component: str, root: Path) -> dict[str, Any]:
    module = component.replace("-", "_")
    extra: dict[str, Any] = {}
    if module in ("source", "build"):
        extra["artifact_addr"] = "127.0.0.1:0"
    if module in ("source", "build", "image_scan"):
        extra["artifact_store"] = f"file://{root / 'artifacts'}"
    if module in ("source", "image_update"):
        extra |= {"git_cache_dir": str(root / f"git-{module}"), "allow_file_urls": True}
    if module == "notify":
        extra["receiver_addr"] = "127.0.0.1:0"
    return extra


@contextlib.asynccontextmanager
async def all_services(nats: AuthNats, kubeconfig: str, root: Path) -> AsyncIterator[None]:
    """The six services, each connected as its own user with the password the Secret would hold."""
    async with contextlib.AsyncExitStack() as stack:
        for component in COMPONENTS:
            spec = importlib.import_module(f"services.{component.replace('-', '_')}.app").SPEC
            await stack.enter_async_context(
                running_service(
                    spec,
                    timeout=30,
                    nats_url=nats.url,
                    nats_user=component,
                    nats_password=nats.passwords[component],
                    kubeconfig=kubeconfig,
                    **_service_settings(component, root),
                )
            )
        yield


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
"""


async def _image(kube: Kube) -> str | None:
    obj = await kube.get("apps/v1", "Deployment", "web", "apps")
    return obj["spec"]["template"]["spec"]["containers"][0]["image"] if obj else None


async def test_services_work_as_their_own_users_end_to_end(
    auth_nats: AuthNats, git_server: GitServer, tmp_path: Path
) -> None:
    bare, url = git_server.new_repo("nats-auth")
    await asyncio.to_thread(seed_repo, url, {"apps/deployment.yaml": DEPLOYMENT.format(image="nginx:1.25.0")})
    async with (
        emulated_cluster(tmp_path, (NS, "apps")) as cluster,
        all_services(auth_nats, cluster.kubeconfig, tmp_path),
    ):
        # (a) Every service became ready (running_service waits for /readyz: consumers pulling),
        # and the consumers on the server are exactly those nats.conf lets the users pull from.
        expected = set().union(*permitted_durables().values())
        await eventually(lambda: auth_nats.consumers() == expected, timeout=10, what="every durable consumer")

        # (b) A commit reaches the cluster through source → build → apply, all authenticated.
        kube = cluster.kube
        await kube.create(
            {
                "apiVersion": GIT,
                "kind": "GitRepository",
                "metadata": {"name": "fleet", "namespace": NS},
                "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}},
            }
        )
        await kube.create(
            {
                "apiVersion": KS,
                "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": NS},
                "spec": {
                    "interval": "10m",
                    "path": "./apps",
                    "prune": True,
                    "targetNamespace": "apps",
                    "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                },
            }
        )
        await eventually(
            lambda: _is(_image(kube), "nginx:1.25.0"), timeout=60, what="the Deployment from Git"
        )

        # image-update's user announces a pushed commit, as image-update does after a push.
        second = await asyncio.to_thread(
            commit_files, url, {"apps/deployment.yaml": DEPLOYMENT.format(image="nginx:1.25.1")}, "bump"
        )
        assert head(bare, "main") == second
        image_update = await auth_nats.bus("image-update")
        try:
            repo = ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name="fleet")
            await image_update.publish(
                GitCommit(repository=repo, branch="main", commit=second, revision=f"main@sha1:{second}")
            )
        finally:
            await image_update.close(grace=1)
        await eventually(
            lambda: _is(_image(kube), "nginx:1.25.1"), timeout=30, what="the commit in the cluster"
        )
    assert auth_nats.violations() == []


async def _is(value: Any, expected: str) -> bool:
    return await value == expected


async def test_a_user_is_refused_the_subjects_and_consumers_of_others(auth_nats: AuthNats) -> None:
    notify = await auth_nats.bus("notify")
    try:
        # (c) notify may not announce artifacts: only source publishes artifact.ready.
        fake = ArtifactReady(
            source=ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name="fleet"),
            revision="main@sha1:" + "0" * 40,
            digest="sha256:" + "0" * 64,
            url="http://attacker.example/a.tar.gz",
            path="gitrepository/flux-system/fleet/a.tar.gz",
        )
        with pytest.raises(PublishError):
            await notify.publish(fake, timeout=0.5)
        # Nor pull from build's work queue by binding its durable: the server never answers.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                notify.js.pull_subscribe(
                    "sluice.artifact.ready.>", durable="build-artifact-ready", stream="SLUICE"
                ),
                2,
            )
        # Nor change the stream's limits: they are the operator's.
        config = (await notify.js.stream_info("SLUICE")).config
        config.max_age = 60.0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(notify.js.update_stream(config), 2)
        # Nor read the replies meant for source (pulled messages arrive on its inbox): each user
        # has its own inbox prefix and may subscribe under nothing else.
        snoop = await notify.nc.subscribe("_INBOX_source.>")
        await notify.nc.flush()
        await snoop.unsubscribe()
    finally:
        await notify.close(grace=1)
    violations = "\n".join(auth_nats.violations())
    assert 'Subscription Violation - User "notify", Subject "_INBOX_source.>"' in violations
    assert 'User "notify", Subject "$JS.API.STREAM.UPDATE.SLUICE"' in violations
    assert 'User "notify", Subject "sluice.artifact.ready.gitrepository.flux-system.fleet"' in violations
    assert re.search(
        r'User "notify", Subject "\$JS\.API\.CONSUMER\.\w+\.SLUICE\.build-artifact-ready', violations
    )
    with pytest.raises(ConnectionError):
        await auth_nats.bus("notify", password="not-the-password", connect_timeout=0.5)


async def test_the_cli_user_can_follow_events_but_not_publish_them(auth_nats: AuthNats) -> None:
    from libs.common.events import EventRecord

    source = await auth_nats.bus("source")
    cli = await auth_nats.bus("cli")
    try:
        follow = cli.follow("sluice.event.>", EventRecord)
        first = asyncio.ensure_future(anext(follow))
        record = EventRecord(
            involved_object=ObjectRef(api_version=GIT, kind="GitRepository", namespace=NS, name="fleet"),
            severity="info",
            timestamp=datetime.now(UTC),
            reason="Succeeded",
            message="stored artifact",
            reporting_controller="sluice-source",
        )

        async def delivered() -> bool:
            if not first.done():
                await source.publish(record)
            return first.done()

        await eventually(delivered, timeout=10, what="the CLI to receive an event record")
        payload, _ = first.result()
        assert payload.message == "stored artifact"
        await follow.aclose()
        with pytest.raises(PublishError):
            await cli.publish(record, timeout=0.5)

        # `sluice check` reads the stream and its consumers as the cli user.
        async def ignore(_commit: GitCommit, _delivery: object) -> None:
            return None

        source.subscribe("source-git-commit", "sluice.git.commit.>", GitCommit, ignore)

        async def consumers_seen_by_cli() -> set[str]:
            report = await stream_report(auth_nats.url, user="cli", password=auth_nats.passwords["cli"])
            return {c.name for c in report.consumers} if report.exists else set()

        await eventually(
            lambda: _contains(consumers_seen_by_cli(), "source-git-commit"),
            timeout=10,
            what="the cli user to list source's consumer",
        )
    finally:
        await cli.close(grace=1)
        await source.close(grace=1)


async def _contains(names: Awaitable[set[str]], name: str) -> bool:
    return name in await names
