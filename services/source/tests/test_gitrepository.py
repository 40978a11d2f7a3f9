"""The source service reconciling GitRepositories against real git over ssh (a real sshd with
host-key checking), a real nats-server and the Kubernetes emulator.

What a user sees: status (conditions, artifact, observedGeneration), artifacts downloaded from
the served URL, `artifact.ready` and event records on the bus, and the git commands the service
ran (its `sluice_git_commands_total` metric).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.common import names
from libs.common.api.crd import crd_documents
from libs.common.api.source.gitrepository import GitRepository
from libs.common.artifacts import safe_extract
from libs.common.bus import Bus, Delivery
from libs.common.events import ArtifactReady, EventRecord, GitCommit, ObjectRef
from libs.common.events import subjects as subj
from libs.common.kube import Kube
from libs.devservers.git import commit_files, seed_repo
from libs.kube_emulator import KubeEmulator
from services.source.app import SPEC
from tests.git.http_git import http_git_server
from tests.git.signing import signed_commit, ssh_signer
from tests.harness.git_fixtures import GitServer
from tests.harness.services import RunningService, running_service
from tests.support import eventually

pytestmark = pytest.mark.integration

GV = GitRepository.api_version()
NS = "flux-system"
KIND = "GitRepository"


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


@dataclass
class Env:
    kube: Kube
    bus: Bus
    svc: RunningService
    git_server: GitServer
    tmp: Path
    artifacts: list[ArtifactReady] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    @property
    def ssh_env(self) -> dict[str, str]:
        return self.git_server.ssh.git_env()

    async def new_repo(self, name: str, files: dict[str, str]) -> tuple[Path, str, str]:
        bare, _ = self.git_server.new_repo(name)
        url = self.git_server.ssh.url_for(bare)
        sha = await in_thread(seed_repo, url, files, env=self.ssh_env)
        return bare, url, sha

    async def commit(self, url: str, files: dict[str, str], message: str) -> str:
        sha: str = await in_thread(commit_files, url, files, message, env=self.ssh_env)
        return sha

    async def secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await self.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "data": encoded,
            }
        )

    async def ssh_secret(self, name: str = "ssh-auth") -> str:
        await self.secret(
            name,
            {
                "identity": self.git_server.ssh.client_private_key,
                "known_hosts": self.git_server.ssh.known_hosts,
            },
        )
        return name

    async def create(self, name: str, url: str, secret: str | None = "ssh-auth", **spec: Any) -> None:
        body: dict[str, Any] = {"url": url, "interval": "1h", "ref": {"branch": "main"}, **spec}
        if secret:
            body["secretRef"] = {"name": secret}
        await self.kube.create(
            {"apiVersion": GV, "kind": KIND, "metadata": {"name": name, "namespace": NS}, "spec": body}
        )

    async def get(self, name: str) -> dict[str, Any]:
        obj = await self.kube.get(GV, KIND, name, NS)
        assert obj is not None
        return obj

    async def conditions(self, name: str) -> dict[str, dict[str, Any]]:
        obj = await self.get(name)
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}

    async def ready_at(self, name: str, revision: str, generation: int | None = None) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            obj = await self.get(name)
            status = obj.get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            if conds.get("Ready", {}).get("status") != "True":
                return None
            if (status.get("artifact") or {}).get("revision") != revision:
                return None
            if generation is not None and status.get("observedGeneration") != generation:
                return None
            return obj

        result: dict[str, Any] = await eventually(check, what=f"{name} Ready at {revision}")
        return result

    async def failing(self, name: str, reason: str) -> dict[str, dict[str, Any]]:
        async def check() -> dict[str, dict[str, Any]] | None:
            conds = await self.conditions(name)
            fetch = conds.get("FetchFailed", {})
            ready = conds.get("Ready", {})
            if fetch.get("reason") == reason and ready.get("status") == "False":
                return conds
            return None

        result: dict[str, dict[str, Any]] = await eventually(check, what=f"{name} FetchFailed/{reason}")
        return result

    async def git_counts(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.svc.url}/metrics") as resp:
            text = await resp.text()
        counts: dict[str, float] = {}
        for command, outcome, value in re.findall(
            r'sluice_git_commands_total\{command="([^"]+)",outcome="([^"]+)"\} ([0-9.e+]+)', text
        ):
            counts[f"{command}/{outcome}"] = float(value)
        return counts

    async def download(self, artifact: dict[str, Any], dest: Path) -> Path:
        async with aiohttp.ClientSession() as session, session.get(artifact["url"]) as resp:
            assert resp.status == 200, artifact["url"]
            data = await resp.read()
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == artifact["digest"]
        await in_thread(safe_extract, data, dest)
        return dest

    def ready_events(self, name: str) -> list[ArtifactReady]:
        return [a for a in self.artifacts if a.source.name == name]

    def records(self, name: str, reason: str | None = None) -> list[EventRecord]:
        return [
            e
            for e in self.events
            if e.involved_object.name == name and (reason is None or e.reason == reason)
        ]


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
async def env(nats_url: str, tmp_path: Path, git_server: GitServer) -> AsyncIterator[Env]:
    async with KubeEmulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        kube = Kube.from_config(str(kubeconfig))
        for crd in crd_documents():
            await kube.apply(crd, field_manager="test")
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        bus = await Bus.connect(nats_url, service="test-observer")
        artifacts: list[ArtifactReady] = []
        events: list[EventRecord] = []

        async def on_artifact(payload: ArtifactReady, delivery: Delivery) -> None:
            artifacts.append(payload)

        async def on_event(payload: EventRecord, delivery: Delivery) -> None:
            events.append(payload)

        bus.subscribe("test-artifacts", subj.family_filter(names.ARTIFACT_READY), ArtifactReady, on_artifact)
        bus.subscribe("test-events", subj.family_filter(names.EVENT_RECORD), EventRecord, on_event)
        try:
            async with running_service(
                SPEC,
                nats_url=nats_url,
                kubeconfig=str(kubeconfig),
                artifact_store=f"file://{tmp_path / 'artifacts'}",
                artifact_addr="127.0.0.1:0",
                git_cache_dir=str(tmp_path / "git-cache"),
                allow_file_urls=True,
            ) as svc:
                yield Env(kube, bus, svc, git_server, tmp_path, artifacts, events)
        finally:
            await bus.close(grace=1)
            await kube.close()


REPO_FILES = {
    "apps/deploy.yaml": "kind: Deployment\n",
    "apps/README.md": "docs\n",
    "logo.png": "not really a png",
    ".github/workflows/ci.yml": "on: push\n",
    ".sops.yaml": "creation_rules: []\n",
    ".sourceignore": "secrets/\n",
    "secrets/token.yaml": "kind: Secret\n",
    "apps/.sourceignore": "*.md\n",
}


async def test_ssh_repository_artifact_noop_and_git_commit(env: Env) -> None:
    await env.ssh_secret()
    _, url, first = await env.new_repo("podinfo", REPO_FILES)
    await env.create("podinfo", url, ignore="!logo.png\n")

    obj = await env.ready_at("podinfo", f"main@sha1:{first}", generation=1)
    status = obj["status"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["message"] == f"stored artifact for revision 'main@sha1:{first}'"
    assert conds["ArtifactInStorage"]["status"] == "True"
    assert "FetchFailed" not in conds and "Reconciling" not in conds
    assert status["observedIgnore"] == "!logo.png\n"
    artifact = status["artifact"]
    assert artifact["digest"].startswith("sha256:")
    assert artifact["path"].startswith("gitrepository/flux-system/podinfo/")
    tree = await env.download(artifact, env.tmp / "first")
    # Flux's defaults and the .sourceignore files apply; spec.ignore re-includes logo.png.
    assert files_under(tree) == {"apps/deploy.yaml", "apps/.sourceignore", ".sourceignore", "logo.png"}

    # sparseCheckout: only the listed directories land in the artifact.
    await env.create("sparse", url, sparseCheckout=["./apps"])
    sparse = await env.ready_at("sparse", f"main@sha1:{first}")
    assert sparse["status"]["observedSparseCheckout"] == ["./apps"]
    tree = await env.download(sparse["status"]["artifact"], env.tmp / "sparse")
    assert files_under(tree) == {"apps/deploy.yaml", "apps/.sourceignore"}

    await eventually(lambda: env.ready_events("podinfo"), what="artifact.ready")
    ready = env.ready_events("podinfo")[0]
    assert (ready.revision, ready.digest, ready.url) == (
        artifact["revision"],
        artifact["digest"],
        artifact["url"],
    )
    new_artifact = await eventually(lambda: env.records("podinfo", "NewArtifact"), what="NewArtifact event")
    assert new_artifact[0].message == "stored artifact for commit 'Seed repository'"
    assert new_artifact[0].metadata["source.toolkit.fluxcd.io/revision"] == f"main@sha1:{first}"

    # No-op: a requested reconcile of an unchanged branch is one ls-remote and nothing else.
    before = await env.git_counts()
    await env.kube.patch(
        GV,
        KIND,
        "podinfo",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "one"}}},
        namespace=NS,
    )
    await eventually(
        lambda: env.get("podinfo"),
        what="requestedAt handled",
    )

    async def handled() -> bool:
        return (await env.get("podinfo"))["status"].get("lastHandledReconcileAt") == "one"

    await eventually(handled, what="lastHandledReconcileAt")
    after = await env.git_counts()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    assert delta == {"ls-remote/ok": 1}
    assert len(env.ready_events("podinfo")) == 1
    assert (await env.get("podinfo"))["status"]["artifact"] == artifact

    # A new commit announced on git.commit is fetched at once (the interval is 1h).
    second = await env.commit(url, {"apps/deploy.yaml": "kind: Deployment\nspec: {}\n"}, "Bump deployment")
    await env.bus.publish(
        GitCommit(
            repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name="podinfo"),
            branch="main",
            commit=second,
            revision=f"main@sha1:{second}",
        )
    )
    obj = await env.ready_at("podinfo", f"main@sha1:{second}")
    await eventually(lambda: len(env.ready_events("podinfo")) == 2, what="second artifact.ready")
    assert env.ready_events("podinfo")[1].revision == f"main@sha1:{second}"
    tree = await env.download(obj["status"]["artifact"], env.tmp / "second")
    assert (tree / "apps/deploy.yaml").read_text() == "kind: Deployment\nspec: {}\n"
    fetched = await env.git_counts()
    assert fetched.get("fetch/ok", 0) - after.get("fetch/ok", 0) == 1  # a delta fetch into the cache
    assert fetched.get("init/ok", 0) == 1  # one mirror for the URL, never re-cloned

    # Garbage collection keeps the last two artifacts.
    third = await env.commit(url, {"apps/extra.yaml": "x: 1\n"}, "Third")
    await env.bus.publish(
        GitCommit(
            repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name="podinfo"),
            branch="main",
            commit=third,
            revision=f"main@sha1:{third}",
        )
    )
    await env.ready_at("podinfo", f"main@sha1:{third}")
    stored = sorted((env.tmp / "artifacts" / "gitrepository" / NS / "podinfo").glob("*.tar.gz"))
    assert len(stored) == 2

    # Deleting the object deletes its artifacts.
    await env.kube.delete(GV, KIND, "podinfo", NS)

    async def gone() -> bool:
        return await env.kube.get(GV, KIND, "podinfo", NS) is None

    await eventually(gone, what="deletion")
    assert not list((env.tmp / "artifacts" / "gitrepository" / NS / "podinfo").glob("*.tar.gz"))


WRONG_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


async def test_failures_set_fetch_failed_emit_events_and_keep_the_artifact(env: Env) -> None:
    await env.ssh_secret()
    bare, url, sha = await env.new_repo("failing", {"a.yaml": "a: 1\n"})
    await env.create("keep", url)
    good = await env.ready_at("keep", f"main@sha1:{sha}")

    # Missing branch: FetchFailed/GitOperationFailed, Ready=False, an error event, artifact kept.
    await env.kube.patch(GV, KIND, "keep", {"spec": {"ref": {"branch": "nope"}}}, namespace=NS)
    conds = await env.failing("keep", "GitOperationFailed")
    assert "refs/heads/nope" in conds["FetchFailed"]["message"]
    assert conds["Ready"]["reason"] == "GitOperationFailed"
    assert conds["ArtifactInStorage"]["status"] == "True"
    assert (await env.get("keep"))["status"]["artifact"] == good["status"]["artifact"]
    await eventually(
        lambda: [e for e in env.records("keep", "GitOperationFailed") if e.severity == "error"],
        what="error event",
    )

    # A repository that does not exist.
    await env.create("missing", env.git_server.ssh.url_for(bare.parent / "does-not-exist.git"))
    conds = await env.failing("missing", "GitOperationFailed")
    assert "does not appear to be a git repository" in conds["FetchFailed"]["message"]

    # A URL without a host can never work: it stalls with URLInvalid.
    await env.create("nohost", "ssh:///srv/repo.git")

    async def url_invalid() -> dict[str, Any] | None:
        conds = await env.conditions("nohost")
        return conds if conds.get("Stalled", {}).get("reason") == "URLInvalid" else None

    conds = await eventually(url_invalid, what="URLInvalid")
    assert conds["FetchFailed"]["reason"] == "URLInvalid"

    # Bad credentials: a key the server does not know.
    other_key = env.tmp / "other_key"
    await in_thread(
        subprocess.run, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    await env.secret(
        "bad-key",
        {"identity": await in_thread(other_key.read_text), "known_hosts": env.git_server.ssh.known_hosts},
    )
    await env.create("badauth", url, secret="bad-key")
    conds = await env.failing("badauth", "AuthenticationFailed")
    assert "PRIVATE KEY" not in conds["FetchFailed"]["message"]
    await eventually(lambda: env.records("badauth", "AuthenticationFailed"), what="auth event")

    # Wrong host key: never trusted.
    await env.secret(
        "wrong-host",
        {
            "identity": env.git_server.ssh.client_private_key,
            "known_hosts": f"[127.0.0.1]:{env.git_server.ssh.port} {WRONG_HOST_KEY}\n",
        },
    )
    await env.create("wronghost", url, secret="wrong-host")
    conds = await env.failing("wronghost", "GitOperationFailed")
    assert "host key" in conds["FetchFailed"]["message"].lower()

    # An empty repository.
    empty, _ = env.git_server.new_repo("empty")
    await env.create("empty", env.git_server.ssh.url_for(empty))
    conds = await env.failing("empty", "EmptyGitRepository")
    assert "is empty" in conds["FetchFailed"]["message"]

    # spec.timeout bounds every git command: a server that accepts and never answers.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await env.create("slow", f"ssh://git@127.0.0.1:{port}/repo.git", timeout="1s")
        conds = await env.failing("slow", "GitOperationFailed")
        assert "timed out after 1s" in conds["FetchFailed"]["message"]
    finally:
        server.close()
        await server.wait_closed()

    # Missing Secret.
    await env.create("nosecret", url, secret="absent")
    conds = await env.failing("nosecret", "AuthenticationFailed")
    assert "flux-system/absent" in conds["FetchFailed"]["message"]

    # The failing one heals when the spec is fixed.
    await env.kube.patch(GV, KIND, "keep", {"spec": {"ref": {"branch": "main"}}}, namespace=NS)
    obj = await env.ready_at("keep", f"main@sha1:{sha}", generation=3)
    assert "FetchFailed" not in {c["type"] for c in obj["status"]["conditions"]}
    recovered = await eventually(lambda: env.records("keep", "Succeeded"), what="recovery event")
    assert recovered[0].message == f"stored artifact for revision 'main@sha1:{sha}'"
    assert recovered[0].severity == "info"

    # An artifact that disappeared from storage is rebuilt (no fast path), at the same digest.
    stored = env.tmp / "artifacts" / obj["status"]["artifact"]["path"]
    await in_thread(stored.unlink)
    await env.kube.patch(
        GV,
        KIND,
        "keep",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "restore"}}},
        namespace=NS,
    )
    await eventually(stored.exists, what="artifact restored")
    await env.download(obj["status"]["artifact"], env.tmp / "restored")


def tag(bare: Path, name: str, commit: str) -> None:
    subprocess.run(
        ["git", "--git-dir", str(bare), "tag", "-a", "-m", name, name, commit],
        check=True,
        capture_output=True,
        env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
    )


async def test_tag_semver_commit_refs_include_and_unsupported_fields(env: Env) -> None:
    await env.ssh_secret()
    bare, url, v1 = await env.new_repo("refs", {"app.yaml": "v: 1\n"})
    await in_thread(tag, bare, "v1.0.0", v1)
    v11 = await env.commit(url, {"app.yaml": "v: 1.1\n"}, "v1.1")
    await in_thread(tag, bare, "v1.1.0", v11)
    v2 = await env.commit(url, {"app.yaml": "v: 2\n"}, "v2")
    await in_thread(tag, bare, "v2.0.0", v2)

    await env.create("bytag", url, ref={"tag": "v1.0.0"})
    await env.create("bysemver", url, ref={"semver": "^1.0"})
    await env.create("bycommit", url, ref={"commit": v11})
    await env.create("byname", url, ref={"name": "refs/tags/v2.0.0"})
    await env.ready_at("bytag", f"v1.0.0@sha1:{v1}")
    semver = await env.ready_at("bysemver", f"v1.1.0@sha1:{v11}")
    await env.ready_at("bycommit", f"sha1:{v11}")
    await env.ready_at("byname", f"refs/tags/v2.0.0@sha1:{v2}")
    tree = await env.download(semver["status"]["artifact"], env.tmp / "semver")
    assert (tree / "app.yaml").read_text() == "v: 1.1\n"

    # The commit is in the shared cache now, but a user without access to the remote gets nothing.
    await env.create("stranger", url, secret=None, ref={"commit": v11})
    conds = await env.failing("stranger", "GitOperationFailed")
    assert "host key" in conds["FetchFailed"]["message"].lower()
    assert "artifact" not in (await env.get("stranger"))["status"]

    # include: bytag's artifact copied under shared/ in another repository's artifact.
    _, other_url, other = await env.new_repo("includer", {"main.yaml": "m: 1\n"})
    await env.create("includer", other_url, include=[{"repository": {"name": "bytag"}, "toPath": "shared"}])
    obj = await env.ready_at("includer", f"main@sha1:{other}")
    assert obj["status"]["includedArtifacts"][0]["revision"] == f"v1.0.0@sha1:{v1}"
    tree = await env.download(obj["status"]["artifact"], env.tmp / "include")
    assert files_under(tree) == {"main.yaml", "shared/app.yaml"}

    # An include that does not exist: IncludeUnavailable.
    await env.create("badinclude", other_url, include=[{"repository": {"name": "nothere"}}])

    async def unavailable() -> bool:
        conds = await env.conditions("badinclude")
        return (
            conds.get("IncludeUnavailable", {}).get("status") == "True"
            and conds["Ready"]["status"] == "False"
        )

    await eventually(unavailable, what="IncludeUnavailable")

    # Unsupported fields are reported, never ignored.
    await env.create("appauth", url, provider="github")

    async def stalled() -> dict[str, Any] | None:
        conds = await env.conditions("appauth")
        return conds if conds.get("Stalled", {}).get("reason") == "UnsupportedField" else None

    conds = await eventually(stalled, what="UnsupportedField")
    assert "spec.provider=github" in conds["Ready"]["message"]


async def test_suspend_and_resume(env: Env) -> None:
    await env.ssh_secret()
    _, url, first = await env.new_repo("suspend", {"a.yaml": "a: 1\n"})
    await env.create("sus", url)
    await env.create("barrier", url)
    await env.ready_at("sus", f"main@sha1:{first}")
    await env.ready_at("barrier", f"main@sha1:{first}")
    await env.kube.patch(GV, KIND, "sus", {"spec": {"suspend": True}}, namespace=NS)
    second = await env.commit(url, {"a.yaml": "a: 2\n"}, "second")
    for name in ("sus", "barrier"):
        await env.bus.publish(
            GitCommit(
                repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name=name),
                branch="main",
                commit=second,
                revision=f"main@sha1:{second}",
            )
        )
    # The not-suspended twin fetching the commit shows both requests were handled.
    await env.ready_at("barrier", f"main@sha1:{second}")
    assert (await env.get("sus"))["status"]["artifact"]["revision"] == f"main@sha1:{first}"
    assert len(env.ready_events("sus")) == 1
    await env.kube.patch(GV, KIND, "sus", {"spec": {"suspend": False}}, namespace=NS)
    await env.ready_at("sus", f"main@sha1:{second}")


def add_submodule(parent_url: str, child_url: str, path: str, env: dict[str, str]) -> str:
    """Add ``child_url`` as a submodule at ``path`` of ``parent_url``'s main branch; returns the commit."""
    full = {
        **os.environ,
        **env,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"

        def git(*args: str) -> str:
            done = subprocess.run(
                ["git", *args],
                cwd=work if work.exists() else tmp,
                env=full,
                check=True,
                capture_output=True,
                text=True,
            )
            return done.stdout.strip()

        git("clone", "--quiet", parent_url, str(work))
        git("submodule", "--quiet", "add", child_url, path)
        git("commit", "--quiet", "-m", f"Add {path}")
        git("push", "--quiet", "origin", "HEAD:refs/heads/main")
        return git("rev-parse", "HEAD")


async def test_recurse_submodules(env: Env) -> None:
    await env.ssh_secret()
    _, child_url, _ = await env.new_repo("child", {"lib/base.yaml": "base: 1\n"})
    _, parent_url, _ = await env.new_repo("parent", {"app.yaml": "app: 1\n"})
    sha = await in_thread(add_submodule, parent_url, child_url, "vendor/child", env.ssh_env)

    await env.create("withsubs", parent_url, recurseSubmodules=True)
    await env.create("withoutsubs", parent_url)
    obj = await env.ready_at("withsubs", f"main@sha1:{sha}")
    assert obj["status"]["observedRecurseSubmodules"] is True
    tree = await env.download(obj["status"]["artifact"], env.tmp / "subs")
    assert files_under(tree) == {"app.yaml", "vendor/child/lib/base.yaml"}
    plain = await env.ready_at("withoutsubs", f"main@sha1:{sha}")
    tree = await env.download(plain["status"]["artifact"], env.tmp / "nosubs")
    assert files_under(tree) == {"app.yaml"}


async def test_https_basic_auth_and_bearer_token(env: Env) -> None:
    bare, file_url = env.git_server.new_repo("https-repo")
    sha = await in_thread(seed_repo, file_url, {"x.yaml": "x: 1\n"})
    async with http_git_server(bare.parent, username="git", password="pa55", token="t0ken") as base:
        url = f"{base}/{bare.name}"
        await env.secret("basic", {"username": "git", "password": "pa55"})
        await env.secret("bearer", {"bearerToken": "t0ken"})
        await env.secret("wrong", {"username": "git", "password": "nope"})
        await env.create("basic", url, secret="basic")
        await env.create("bearer", url, secret="bearer")
        await env.create("wrong", url, secret="wrong")
        await env.ready_at("basic", f"main@sha1:{sha}")
        await env.ready_at("bearer", f"main@sha1:{sha}")
        conds = await env.failing("wrong", "AuthenticationFailed")
        assert "nope" not in conds["FetchFailed"]["message"]
        # proxySecretRef: the repository host does not resolve, only the proxy answers.
        await env.secret("proxy", {"address": base})
        await env.create(
            "proxied", f"http://git.invalid/{bare.name}", secret="basic", proxySecretRef={"name": "proxy"}
        )
        await env.ready_at("proxied", f"main@sha1:{sha}")


async def test_include_follows_the_included_repository_and_cycles_stall(env: Env) -> None:
    await env.ssh_secret()
    _, base_url, base1 = await env.new_repo("base", {"base.yaml": "b: 1\n"})
    _, app_url, app = await env.new_repo("app", {"app.yaml": "a: 1\n"})
    await env.create("base", base_url)
    await env.ready_at("base", f"main@sha1:{base1}")
    await env.create(
        "app", app_url, include=[{"repository": {"name": "base"}, "fromPath": ".", "toPath": "lib"}]
    )
    obj = await env.ready_at("app", f"main@sha1:{app}")
    first_digest = obj["status"]["artifact"]["digest"]

    base2 = await env.commit(base_url, {"base.yaml": "b: 2\n"}, "b2")
    await env.bus.publish(
        GitCommit(
            repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name="base"),
            branch="main",
            commit=base2,
            revision=f"main@sha1:{base2}",
        )
    )
    await env.ready_at("base", f"main@sha1:{base2}")

    async def rebuilt() -> dict[str, Any] | None:
        obj = await env.get("app")
        artifact = (obj.get("status") or {}).get("artifact") or {}
        return obj if artifact.get("digest") not in (None, first_digest) else None

    obj = await eventually(rebuilt, what="includer rebuilt")
    assert obj["status"]["includedArtifacts"][0]["revision"] == f"main@sha1:{base2}"
    tree = await env.download(obj["status"]["artifact"], env.tmp / "rebuilt")
    assert (tree / "lib/base.yaml").read_text() == "b: 2\n"
    digest = obj["status"]["artifact"]["digest"]
    await eventually(
        lambda: digest in [a.digest for a in env.ready_events("app")], what="artifact.ready of app"
    )

    # A new revision that cannot be built: ArtifactOutdated (NewRevision) + IncludeUnavailable,
    # and the last good artifact stays.
    app2 = await env.commit(app_url, {"app.yaml": "a: 2\n"}, "a2")
    await env.kube.patch(
        GV,
        KIND,
        "app",
        {"spec": {"include": [{"repository": {"name": "base"}, "fromPath": "nothere"}]}},
        namespace=NS,
    )

    async def outdated() -> dict[str, Any] | None:
        conds = await env.conditions("app")
        return conds if conds.get("ArtifactOutdated", {}).get("reason") == "NewRevision" else None

    conds = await eventually(outdated, what="ArtifactOutdated")
    assert conds["ArtifactOutdated"]["message"] == f"new upstream revision 'main@sha1:{app2}'"
    assert conds["IncludeUnavailable"]["status"] == "True"
    assert "nothere" in conds["IncludeUnavailable"]["message"]
    assert (await env.get("app"))["status"]["artifact"]["digest"] == digest

    # base including app would loop forever: it stalls.
    await env.kube.patch(
        GV, KIND, "base", {"spec": {"include": [{"repository": {"name": "app"}}]}}, namespace=NS
    )

    async def cycle() -> dict[str, Any] | None:
        conds = await env.conditions("base")
        return conds if conds.get("Stalled", {}).get("reason") == "IncludeCycle" else None

    conds = await eventually(cycle, what="include cycle stall")
    assert conds["Ready"]["message"] == "include cycle: base -> app -> base"


async def test_file_url_repository(env: Env) -> None:
    _, url = env.git_server.new_repo("local")
    first = await in_thread(seed_repo, url, {"deploy/cm.yaml": "kind: ConfigMap\n", "logo.png": "x"})
    await env.create("local", url, secret=None)
    obj = await env.ready_at("local", f"main@sha1:{first}")
    tree = await env.download(obj["status"]["artifact"], env.tmp / "local")
    assert files_under(tree) == {"deploy/cm.yaml"}
    await eventually(lambda: env.ready_events("local"), what="artifact.ready")

    second = await in_thread(commit_files, url, {"deploy/cm.yaml": "kind: ConfigMap\ndata: {}\n"}, "two")
    await env.bus.publish(
        GitCommit(
            repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name="local"),
            branch="main",
            commit=second,
            revision=f"main@sha1:{second}",
        )
    )
    await env.ready_at("local", f"main@sha1:{second}")
    await eventually(lambda: len(env.ready_events("local")) == 2, what="second artifact.ready")

    # The service's own cache (every tenant's mirrors) is not readable through file://.
    await env.create("snoop", (env.tmp / "git-cache").as_uri(), secret=None)

    async def refused() -> dict[str, Any] | None:
        conds = await env.conditions("snoop")
        return conds if conds.get("Stalled", {}).get("reason") == "URLInvalid" else None

    conds = await eventually(refused, what="cache URL refused")
    assert "Git cache" in conds["Ready"]["message"]


async def test_verify_signatures(env: Env) -> None:
    await env.ssh_secret()
    signer = await in_thread(ssh_signer, env.tmp)
    bare, _ = env.git_server.new_repo("signed")
    url = env.git_server.ssh.url_for(bare)
    signed = await in_thread(
        signed_commit, url, {"a.yaml": "a: 1\n"}, "signed", signer, env=env.ssh_env, tag="v1.0.0"
    )
    await env.secret("signers", {"author.sshpub": signer.public})

    await env.create("head", url, verify={"mode": "HEAD", "secretRef": {"name": "signers"}})
    await env.create(
        "both", url, ref={"tag": "v1.0.0"}, verify={"mode": "TagAndHEAD", "secretRef": {"name": "signers"}}
    )
    await env.create("tagonbranch", url, verify={"mode": "Tag", "secretRef": {"name": "signers"}})
    obj = await env.ready_at("head", f"main@sha1:{signed}")
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conds["SourceVerified"]["status"] == "True"
    assert conds["SourceVerified"]["message"].startswith(
        f"verified signature of\n\t- commit '{signed}' with key 'SHA256:"
    )
    assert obj["status"]["sourceVerificationMode"] == "HEAD"
    obj = await env.ready_at("both", f"v1.0.0@sha1:{signed}")
    message = {c["type"]: c for c in obj["status"]["conditions"]}["SourceVerified"]["message"]
    assert "tag 'v1.0.0' with key" in message and f"commit '{signed}' with key" in message

    async def verification_failed(name: str) -> dict[str, Any] | None:
        conds = await env.conditions(name)
        verified = conds.get("SourceVerified", {})
        if verified.get("status") == "False" and conds.get("Ready", {}).get("reason") == "VerificationError":
            return conds
        return None

    conds = await eventually(lambda: verification_failed("tagonbranch"), what="Tag mode on a branch")
    assert "not a tag" in conds["SourceVerified"]["message"]

    # An unsigned commit is not accepted; the last verified artifact stays.
    unsigned = await in_thread(signed_commit, url, {"a.yaml": "a: 2\n"}, "unsigned", None, env=env.ssh_env)
    await env.bus.publish(
        GitCommit(
            repository=ObjectRef(api_version=GV, kind=KIND, namespace=NS, name="head"),
            branch="main",
            commit=unsigned,
            revision=f"main@sha1:{unsigned}",
        )
    )
    conds = await eventually(lambda: verification_failed("head"), what="unsigned commit rejected")
    assert unsigned in conds["SourceVerified"]["message"]
    assert conds["ArtifactOutdated"]["message"] == f"new upstream revision 'main@sha1:{unsigned}'"
    assert (await env.get("head"))["status"]["artifact"]["revision"] == f"main@sha1:{signed}"
