"""The image-update service against real git (file:// and ssh with host-key checking), a real
nats-server and the Kubernetes emulator. What a user sees: commits in Git with the rendered
message, file bytes, the automation's status, and git.commit events on the bus."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.image.imagepolicy import ImagePolicy
from libs.common.api.image.imageupdateautomation import ImageUpdateAutomation
from libs.common.api.source.gitrepository import GitRepository
from libs.common.bus import Bus, Delivery
from libs.common.events import EventRecord, GitCommit, ImageTag, ObjectRef
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.devservers.git import commit_files, head, log_messages, seed_repo, show_file
from libs.kube_emulator import KubeEmulator
from services.image_update.app import SPEC
from tests.harness.git_fixtures import GitServer
from tests.harness.services import RunningService, running_service
from tests.support import eventually

pytestmark = pytest.mark.integration

NS = "flux-system"
IUA = ImageUpdateAutomation.api_version()
POL = ImagePolicy.api_version()


@dataclass
class Env:
    kube: Kube
    bus: Bus
    svc: RunningService
    git_server: GitServer
    commits: list[GitCommit] = field(default_factory=list)
    commit_ids: list[str | None] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    async def git_repository(self, name: str, url: str, secret: str | None = None) -> None:
        spec: dict[str, Any] = {"url": url, "interval": "1h", "ref": {"branch": "main"}}
        if secret:
            spec["secretRef"] = {"name": secret}
        await self.kube.create(
            {
                "apiVersion": GitRepository.api_version(),
                "kind": "GitRepository",
                "metadata": {"name": name, "namespace": NS},
                "spec": spec,
            }
        )

    async def policy(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self.kube.create(
            {
                "apiVersion": POL,
                "kind": "ImagePolicy",
                "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
                "spec": {"imageRepositoryRef": {"name": name}, "policy": {"semver": {"range": ">=1.0.0"}}},
            }
        )

    async def select(self, name: str, image: str, tag: str, digest: str | None = None) -> None:
        """What image-scan does: record the policy's latestRef, then publish image.tag."""
        ref: dict[str, Any] = {"name": image, "tag": tag}
        if digest:
            ref["digest"] = digest
        await self.kube.patch_status(POL, "ImagePolicy", name, NS, {"latestRef": ref}, field_manager="test")
        await self.bus.publish(
            ImageTag(
                policy=ObjectRef(api_version=POL, kind="ImagePolicy", namespace=NS, name=name),
                image=image,
                tag=tag,
                digest=digest,
            ),
            msg_id=f"ImagePolicy/{NS}/{name}@{tag}",
        )

    async def automation(self, name: str, repo: str, api_version: str = IUA, **spec: Any) -> None:
        git = spec.pop("git", None) or {"commit": {"author": {"name": "Flux", "email": "flux@example.com"}}}
        body = {
            "sourceRef": {"kind": "GitRepository", "name": repo},
            "interval": "1h",
            "git": git,
            "update": {"strategy": "Setters", "path": spec.pop("path", "./")},
            **spec,
        }
        await self.kube.create(
            {
                "apiVersion": IUA,
                "kind": "ImageUpdateAutomation",
                "metadata": {"name": name, "namespace": NS},
                "spec": body,
            }
        )

    async def git_counts(self) -> dict[str, float]:
        """The service's `sluice_git_commands_total` by `command/outcome`."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.svc.url}/metrics") as resp:
            text = await resp.text()
        return {
            f"{command}/{outcome}": float(value)
            for command, outcome, value in re.findall(
                r'sluice_git_commands_total\{command="([^"]+)",outcome="([^"]+)"\} ([0-9.e+]+)', text
            )
        }

    async def status(self, name: str) -> dict[str, Any]:
        obj = await self.kube.get(IUA, "ImageUpdateAutomation", name, NS)
        assert obj is not None
        status: dict[str, Any] = obj.get("status") or {}
        return status

    async def condition(self, name: str, type_: str = "Ready") -> dict[str, Any]:
        for cond in (await self.status(name)).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    async def ready(self, name: str, message_start: str = "") -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            cond = await self.condition(name)
            ok = cond.get("status") == "True" and cond.get("message", "").startswith(message_start)
            return await self.status(name) if ok else None

        result: dict[str, Any] = await eventually(check, what=f"{name} Ready ({message_start!r})")
        return result


@pytest.fixture
async def env(nats_url: str, tmp_path: Path, git_server: GitServer) -> AsyncIterator[Env]:
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        bus = await Bus.connect(nats_url, service="test-image-update-observer")
        commits: list[GitCommit] = []
        commit_ids: list[str | None] = []
        events: list[EventRecord] = []

        async def on_commit(payload: GitCommit, delivery: Delivery) -> None:
            commits.append(payload)
            commit_ids.append(delivery.msg_id)

        async def on_event(payload: EventRecord, delivery: Delivery) -> None:
            events.append(payload)

        bus.subscribe("test-iua-commits", subj.family_filter(names.GIT_COMMIT), GitCommit, on_commit)
        bus.subscribe("test-iua-events", subj.family_filter(names.EVENT_RECORD), EventRecord, on_event)
        try:
            async with running_service(
                SPEC,
                nats_url=nats_url,
                kubeconfig=str(kubeconfig),
                git_cache_dir=str(tmp_path / "git-cache"),
                allow_file_urls=True,
                batch_window=0.5,
            ) as svc:
                yield Env(kube, bus, svc, git_server, commits, commit_ids, events)
        finally:
            await bus.close(grace=1)
            await kube.close()


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the web tier
  namespace: apps
spec:
  template:
    spec:
      containers:
      - name: web
        image: ghcr.io/org/web:1.0.0 # {"$imagepolicy": "flux-system:web"}
      - name: api
        image: "ghcr.io/org/api:1.0.0"  # {"$imagepolicy": "flux-system:api"}
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deploy.yaml]
images:
  - name: web
    newName: ghcr.io/org/web # {"$imagepolicy": "flux-system:web:name"}
    newTag: 1.0.0 # {"$imagepolicy": "flux-system:web:tag"}
"""

TEMPLATE = """\
{{ .Values.prefix }} {{ .AutomationObject }}

{{ range $file, $objects := .Changed.FileChanges -}}
{{ $file }}:
{{ range $obj, $changes := $objects -}}
{{ range $changes }}  {{ $obj.Kind }}/{{ $obj.Name }}: {{ .OldValue }} -> {{ .NewValue }} ({{ .Setter }})
{{ end -}}
{{ end -}}
{{ end -}}
"""


async def test_batched_update_over_ssh_commit_message_status_and_git_commit(env: Env) -> None:
    bare, _ = env.git_server.new_repo("iua-main")
    url = env.git_server.ssh.url_for(bare)
    ssh_env = env.git_server.ssh.git_env()
    files = {"apps/deploy.yaml": DEPLOY, "apps/kustomization.yaml": KUSTOMIZATION, "README.md": "keep\n"}
    seed = await asyncio.to_thread(seed_repo, url, files, env=ssh_env)
    secret = {
        "identity": env.git_server.ssh.client_private_key,
        "known_hosts": env.git_server.ssh.known_hosts,
    }
    await env.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ssh-auth", "namespace": NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()},
        }
    )
    await env.git_repository("app", url, secret="ssh-auth")
    await env.policy("web")
    await env.policy("api")
    await env.automation(
        "app",
        "app",
        path="./apps",
        git={
            "commit": {
                "author": {"name": "Flux Bot", "email": "bot@example.com"},
                "messageTemplate": TEMPLATE,
                "messageTemplateValues": {"prefix": "[ci skip]"},
            }
        },
    )
    # No policy has a latestRef yet: nothing to change, no commit.
    status = await env.ready("app", "repository up-to-date")
    assert status["observedSourceRevision"] == f"main@sha1:{seed}"
    assert "lastPushCommit" not in status

    # Two policies change close together: one commit with both.
    await env.select("web", "ghcr.io/org/web", "1.1.0")
    await env.select("api", "ghcr.io/org/api", "2.0.0", digest="sha256:" + "a" * 64)
    status = await env.ready("app", "pushed commit")
    new_head = await asyncio.to_thread(head, bare)
    assert status["lastPushCommit"] == new_head
    assert status["lastPushTime"]
    assert status["observedSourceRevision"] == f"main@sha1:{new_head}"
    assert status["observedPolicies"] == {
        "web": {"name": "ghcr.io/org/web", "tag": "1.1.0"},
        "api": {"name": "ghcr.io/org/api", "tag": "2.0.0", "digest": "sha256:" + "a" * 64},
    }
    messages = await asyncio.to_thread(log_messages, bare)
    assert len(messages) == 2
    assert messages[0] == (
        "[ci skip] flux-system/app\n\n"
        "deploy.yaml:\n"
        "  Deployment/web: ghcr.io/org/web:1.0.0 -> ghcr.io/org/web:1.1.0 (flux-system:web)\n"
        f"  Deployment/web: ghcr.io/org/api:1.0.0 -> ghcr.io/org/api:2.0.0@sha256:{'a' * 64} (flux-system:api)\n"
        "kustomization.yaml:\n"
        "  Kustomization/: 1.0.0 -> 1.1.0 (flux-system:web:tag)"
    )
    assert await asyncio.to_thread(show_file, bare, "apps/deploy.yaml") == DEPLOY.replace(
        "web:1.0.0", "web:1.1.0"
    ).replace('"ghcr.io/org/api:1.0.0"', f'"ghcr.io/org/api:2.0.0@sha256:{"a" * 64}"')
    assert await asyncio.to_thread(show_file, bare, "apps/kustomization.yaml") == KUSTOMIZATION.replace(
        "newTag: 1.0.0", "newTag: 1.1.0"
    )
    ready = await env.condition("app")
    assert ready["message"].startswith(f"pushed commit '{new_head[:7]}' to branch 'main'\n[ci skip]")
    commit = await eventually(lambda: [c for c in env.commits if c.commit == new_head], what="git.commit")
    assert commit[0].repository.name == "app" and commit[0].branch == "main"
    assert commit[0].revision == f"main@sha1:{new_head}"
    assert commit[0].author is not None and commit[0].author.name == "app"
    # The bus namespaces ids by event family (the stream de-duplicates across subjects), so this
    # id cannot collide with source's reconcile.request for the same commit.
    msg_id = env.commit_ids[env.commits.index(commit[0])]
    assert msg_id == f"git.commit:GitRepository/flux-system/app@{new_head}"
    pushed = await eventually(
        lambda: [
            e for e in env.events if e.involved_object.name == "app" and e.message.startswith("pushed commit")
        ],
        what="the push event",
    )
    assert pushed[0].severity == "info" and pushed[0].reason == "Succeeded"
    assert pushed[0].metadata.get("image.toolkit.fluxcd.io/revision") == f"main@sha1:{new_head}"

    # The same tag again: nothing to change, no commit.
    await env.bus.publish(
        ImageTag(
            policy=ObjectRef(api_version=POL, kind="ImagePolicy", namespace=NS, name="web"),
            image="ghcr.io/org/web",
            tag="1.1.0",
        ),
        msg_id="ImagePolicy/flux-system/web@again",
    )
    await env.select("web", "ghcr.io/org/web", "1.2.0")
    await env.ready("app", f"pushed commit '{(await asyncio.to_thread(head, bare))[:7]}'")
    await eventually(lambda: len(env.commits) >= 2, what="second git.commit")
    messages = await asyncio.to_thread(log_messages, bare)
    assert len(messages) == 3
    assert "1.1.0 -> 1.2.0" in messages[0]

    # Nothing moved: a requested reconcile costs one ls-remote — no fetch, no commit.
    before = await env.git_counts()
    await env.kube.patch(
        IUA,
        "ImageUpdateAutomation",
        "app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}}},
        namespace=NS,
    )

    async def handled() -> bool:
        return (await env.status("app")).get("lastHandledReconcileAt") == "now-1"

    await eventually(handled, what="the requested reconcile")
    after = await env.git_counts()
    assert after.get("ls-remote/ok", 0) >= before.get("ls-remote/ok", 0) + 1
    assert after.get("fetch/ok", 0) == before.get("fetch/ok", 0)
    assert len(await asyncio.to_thread(log_messages, bare)) == 3


async def test_two_automations_on_one_branch_and_outside_pushes_lose_nothing(env: Env) -> None:
    bare, url = env.git_server.new_repo("iua-race")
    files = {
        f"{team}/deploy.yaml": f'image: ghcr.io/org/{team}:1.0.0 # {{"$imagepolicy": "flux-system:{team}"}}\n'
        for team in ("alpha", "beta")
    }
    await asyncio.to_thread(seed_repo, url, files)
    await env.git_repository("shared", url)
    for team in ("alpha", "beta"):
        await env.policy(team, labels={"team": team})
        await env.automation(team, "shared", path=f"./{team}", policySelector={"matchLabels": {"team": team}})
    for team in ("alpha", "beta"):
        await env.ready(team, "repository up-to-date")
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        await asyncio.gather(
            env.select("alpha", "ghcr.io/org/alpha", version),
            env.select("beta", "ghcr.io/org/beta", version),
            asyncio.to_thread(commit_files, url, {f"outside-{version}.txt": version}, f"outside {version}"),
        )

        async def landed(version: str = version) -> bool:
            texts = [await asyncio.to_thread(show_file, bare, f"{t}/deploy.yaml") for t in ("alpha", "beta")]
            return all(f":{version} " in text for text in texts)

        await eventually(landed, what=f"both automations at {version}")
    messages = await asyncio.to_thread(log_messages, bare)
    assert sum(m.startswith("outside") for m in messages) == 3
    assert await asyncio.to_thread(show_file, bare, "outside-1.1.0.txt") == "1.1.0"
    for team in ("alpha", "beta"):
        expected = {team: {"name": f"ghcr.io/org/{team}", "tag": "1.3.0"}}

        async def observed(team: str = team, expected: dict[str, Any] = expected) -> bool:
            # The status is written right after the push lands.
            return bool((await env.status(team)).get("observedPolicies") == expected)

        await eventually(observed, what=f"{team} observedPolicies at 1.3.0")
        cond = await env.condition(team)
        assert cond["status"] == "True" and cond["message"].startswith("pushed commit")


async def test_removed_template_field_and_bad_template_stall(env: Env) -> None:
    _, url = env.git_server.new_repo("iua-stall")
    await asyncio.to_thread(seed_repo, url, {"a.yaml": "x: 1\n"})
    await env.git_repository("stall", url)
    author = {"name": "Flux", "email": "flux@example.com"}
    await env.automation(
        "old",
        "stall",
        api_version="image.toolkit.fluxcd.io/v1beta2",
        git={"commit": {"author": author, "messageTemplate": "{{ range .Updated.Images }}{{ . }}{{ end }}"}},
    )
    await env.automation(
        "bad", "stall", git={"commit": {"author": author, "messageTemplate": '{{ template "x" }}'}}
    )

    async def stalled(name: str) -> dict[str, Any] | None:
        cond = await env.condition(name, "Stalled")
        return cond if cond.get("status") == "True" else None

    old = await eventually(lambda: stalled("old"), what="old stalled")
    assert old["reason"] == "RemovedTemplateField"
    assert ".Updated" in old["message"] and ".Changed" in old["message"]
    bad = await eventually(lambda: stalled("bad"), what="bad stalled")
    assert bad["reason"] == "InvalidCommitMessageTemplate"
    assert "template" in bad["message"]

    # A missing GitRepository is a failure that heals (retried), not a stall.
    await env.automation("orphan", "nowhere")

    async def failing() -> dict[str, Any] | None:
        cond = await env.condition("orphan")
        return cond if cond.get("reason") == "SourceNotFound" else None

    cond = await eventually(failing, what="orphan SourceNotFound")
    assert cond["status"] == "False"
    assert cond["message"] == "referenced GitRepository 'flux-system/nowhere' not found"
    assert (await env.condition("orphan", "Stalled")) == {}
