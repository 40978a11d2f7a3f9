"""Receivers: the webhook path in status, per-type verification over real HTTP, and what a valid
call does — reconcile.request on the bus and Flux's requestedAt annotation on each resource."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest

from libs.common.api.notification.receiver import Receiver
from libs.common.api.source.gitrepository import GitRepository
from services.notify.tests.conftest import NS, Env
from tests.support import eventually

pytestmark = pytest.mark.integration

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def path_for(token: str, name: str) -> str:
    return "/hook/" + hashlib.sha256(f"{token}{name}{NS}".encode()).hexdigest()


async def ready_path(env: Env, name: str) -> str:
    async def check() -> str | None:
        status = (await env.get(Receiver, name)).get("status") or {}
        ready = {c["type"]: c for c in status.get("conditions") or []}.get("Ready", {})
        if ready.get("status") == "True":
            path: str = status["webhookPath"]
            assert ready["message"] == f"Receiver initialized for path: {path}"
            return path
        return None

    result: str = await eventually(check, what=f"Receiver {name} Ready")
    return result


async def post(env: Env, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(env.hook_url + path, data=body, headers=headers or {}) as resp,
    ):
        return resp.status


async def requested_at(env: Env, name: str) -> str | None:
    annotations = (await env.get(GitRepository, name))["metadata"].get("annotations") or {}
    value: str | None = annotations.get(REQUESTED_AT)
    return value


def requested(env: Env) -> list[str]:
    return sorted(r.object.name for r in env.requests if r.reason == "receiver")


async def test_generic_hmac_and_github_receivers(env: Env) -> None:
    await env.secret("webhook-token", {"token": "s3cret"})
    await env.gitrepository("podinfo")
    await env.gitrepository("web-a", labels={"team": "web"})
    await env.gitrepository("web-b", labels={"team": "web"})
    await env.gitrepository("db", labels={"team": "db"})
    await env.receiver(
        "hmac",
        type="generic-hmac",
        secretRef={"name": "webhook-token"},
        resources=[{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "web"}}],
    )
    await env.receiver(
        "github",
        type="github",
        events=["push"],
        secretRef={"name": "webhook-token"},
        resources=[{"kind": "GitRepository", "name": "podinfo"}],
    )
    hmac_path = await ready_path(env, "hmac")
    assert hmac_path == path_for("s3cret", "hmac")
    github_path = await ready_path(env, "github")

    body = b'{"ref":"refs/heads/main"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()

    # Refused calls change nothing.
    assert await post(env, hmac_path, body, {"X-Signature": bad}) == 401
    assert await post(env, hmac_path, body) == 401
    assert await post(env, "/hook/" + "0" * 64, body, {"X-Signature": good}) == 404
    gh = {"X-Hub-Signature-256": good, "X-GitHub-Event": "push"}
    assert await post(env, github_path, body, {**gh, "X-Hub-Signature-256": bad}) == 401
    assert await post(env, github_path, body, {**gh, "X-GitHub-Event": "issues"}) == 400
    assert await post(env, github_path, body, {**gh, "X-GitHub-Event": "ping"}) == 200
    assert await requested_at(env, "podinfo") is None and await requested_at(env, "web-a") is None

    # A valid call: every matched resource is annotated and gets a reconcile.request.
    assert await post(env, hmac_path, body, {"X-Signature": good}) == 200
    await eventually(lambda: len(requested(env)) == 2, what="two reconcile requests")
    assert requested(env) == ["web-a", "web-b"]
    stamp = await requested_at(env, "web-a")
    assert stamp and stamp == await requested_at(env, "web-b")
    assert stamp in {r.requested_at for r in env.requests}
    assert await requested_at(env, "db") is None

    assert await post(env, github_path, body, gh) == 200
    await eventually(lambda: len(requested(env)) == 3, what="the github reconcile request")
    assert requested(env) == ["podinfo", "web-a", "web-b"]
    assert await requested_at(env, "podinfo") is not None
    # Nothing the refused calls (or the ping) asked for slipped in ahead of the valid ones.
    assert len(env.requests) == 3


async def _patch_spec(env: Env, name: str, spec: dict[str, Any]) -> None:
    await env.kube.patch(Receiver.api_version(), Receiver.KIND, name, {"spec": spec}, namespace=NS)


async def test_harbor_dockerhub_suspend_and_unsupported(env: Env) -> None:
    await env.secret("token", {"token": "t0ken"})
    await env.gitrepository("app")
    resources = [{"kind": "GitRepository", "name": "app"}]
    await env.receiver("harbor", type="harbor", secretRef={"name": "token"}, resources=resources)
    await env.receiver("dockerhub", type="dockerhub", secretRef={"name": "token"}, resources=resources)
    await env.receiver("gitlab", type="gitlab", secretRef={"name": "token"}, resources=resources)
    await env.receiver("missing", type="generic", secretRef={"name": "nope"}, resources=resources)
    harbor = await ready_path(env, "harbor")
    dockerhub = await ready_path(env, "dockerhub")

    assert await post(env, harbor, b"{}", {"Authorization": "wrong"}) == 401
    assert await post(env, dockerhub, b"not json") == 400
    assert await requested_at(env, "app") is None
    assert await post(env, harbor, b"{}", {"Authorization": "t0ken"}) == 200
    assert await post(env, dockerhub, json.dumps({"push_data": {"tag": "v1"}}).encode()) == 200
    await eventually(lambda: len(requested(env)) == 2, what="two reconcile requests for app")

    # Types Sluice does not serve yet stall, naming the type; a missing token Secret is reported.
    async def condition(name: str, type_: str) -> dict[str, Any] | None:
        status = (await env.get(Receiver, name)).get("status") or {}
        found: dict[str, Any] | None = {c["type"]: c for c in status.get("conditions") or []}.get(type_)
        return found

    stalled = await eventually(lambda: condition("gitlab", "Stalled"), what="gitlab Stalled")
    assert stalled["reason"] == "UnsupportedType" and "'gitlab'" in stalled["message"]
    assert (await condition("gitlab", "Ready") or {}).get("status") == "False"
    missing = await eventually(lambda: condition("missing", "Ready"), what="missing token reported")
    assert missing["status"] == "False" and missing["reason"] == "TokenNotFound"

    # Suspended: the path answers 503 and nothing is requested.
    await _patch_spec(env, "harbor", {"suspend": True})

    async def suspended() -> bool:
        return await post(env, harbor, b"{}", {"Authorization": "t0ken"}) == 503

    await eventually(suspended, what="503 from a suspended receiver")
    assert len(requested(env)) == 2
