"""libs.common.kube against the Kubernetes API emulator over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common.api.crd import crd_documents
from libs.common.kube import Conflict, Gone, Invalid, Kube, NotFound, WatchEvent
from libs.kube_emulator import KubeEmulator

pytestmark = pytest.mark.integration

GIT = "source.toolkit.fluxcd.io/v1"


def configmap(name: str, ns: str = "default", **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"k": "v"},
    }


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    async with KubeEmulator(history_size=20) as emu:
        client = Kube.from_config(str(emu.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            yield client
        finally:
            await client.close()


async def test_crud_and_list_with_selectors(kube: Kube) -> None:
    assert await kube.get("v1", "ConfigMap", "a", "default") is None
    created = await kube.create(configmap("a", app="web"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    await kube.create(configmap("b", app="db"))
    items, rv = await kube.list_objects("v1", "ConfigMap", "default", label_selector="app=web")
    assert [i["metadata"]["name"] for i in items] == ["a"]
    assert items[0]["kind"] == "ConfigMap" and rv
    stale = dict(created)
    await kube.patch("v1", "ConfigMap", "a", {"data": {"k": "changed"}}, namespace="default")
    with pytest.raises(Conflict):
        await kube.replace(stale)
    assert (await kube.delete("v1", "ConfigMap", "a", "default")) is not None
    assert await kube.delete("v1", "ConfigMap", "a", "default") is None


async def test_server_side_apply_conflicts_and_force(kube: Kube) -> None:
    cm = configmap("owned")
    await kube.apply(cm, field_manager="sluice")
    other = configmap("owned")
    other["data"] = {"k": "theirs"}
    with pytest.raises(Conflict) as conflict:
        await kube.apply(other, field_manager="someone-else", force=False)
    assert "conflict" in str(conflict.value).lower()
    applied = await kube.apply(other, field_manager="someone-else", force=True)
    assert applied["data"] == {"k": "theirs"}
    dry = await kube.apply(configmap("never"), field_manager="sluice", dry_run=True)
    assert dry["metadata"]["name"] == "never"
    assert await kube.get("v1", "ConfigMap", "never", "default") is None


async def test_kinds_from_crds_installed_later_are_found(kube: Kube) -> None:
    with pytest.raises(NotFound):
        await kube.resource(GIT, "GitRepository")
    for crd in crd_documents():
        await kube.apply(crd, field_manager="test")
    res = await kube.resource(GIT, "GitRepository")
    assert res.plural == "gitrepositories" and res.namespaced


async def test_status_patch_removes_keys_that_are_gone(kube: Kube) -> None:
    for crd in crd_documents():
        await kube.apply(crd, field_manager="test")
    repo = {
        "apiVersion": GIT,
        "kind": "GitRepository",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"url": "https://example.com/r.git", "interval": "1m"},
    }
    await kube.create(repo)
    first = {
        "observedGeneration": 1,
        "artifact": {
            "path": "p",
            "url": "u",
            "revision": "main@sha1:" + "a" * 40,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
        },
    }
    await kube.patch_status(GIT, "GitRepository", "r", "default", first, field_manager="sluice-source")
    second = {"observedGeneration": 1}
    out = await kube.patch_status(
        GIT, "GitRepository", "r", "default", second, field_manager="sluice-source", previous=first
    )
    assert "artifact" not in out["status"]
    assert out["spec"]["url"] == "https://example.com/r.git", "the status subresource leaves spec alone"
    bad = dict(
        repo, metadata={"name": "bad", "namespace": "default"}, spec={"url": "ftp://x", "interval": "1m"}
    )
    with pytest.raises(Invalid) as invalid:
        await kube.create(bad)
    assert any("spec.url" in str(c.get("field")) for c in invalid.value.causes)


async def test_watch_streams_changes_and_reports_expired_history(kube: Kube) -> None:
    _, rv = await kube.list_objects("v1", "ConfigMap", "default")
    seen: list[WatchEvent] = []

    async def watch() -> None:
        async for ev in kube.watch("v1", "ConfigMap", "default", resource_version=rv, timeout_seconds=5):
            seen.append(ev)
            if len([e for e in seen if e.type != "BOOKMARK"]) == 2:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await kube.create(configmap("w"))
    await kube.patch("v1", "ConfigMap", "w", {"data": {"k": "2"}}, namespace="default")
    await asyncio.wait_for(task, 10)
    assert [e.type for e in seen if e.type != "BOOKMARK"] == ["ADDED", "MODIFIED"]

    for n in range(30):  # push the first events out of the emulator's 20-event history
        await kube.create(configmap(f"filler-{n}"))
    with pytest.raises(Gone):
        async for _ in kube.watch("v1", "ConfigMap", "default", resource_version=rv, timeout_seconds=2):
            pass
