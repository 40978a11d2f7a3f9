"""Watch: initial ADDED, resume from resourceVersion, timeouts, selectors, bookmarks, 410 Gone."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests
from kubernetes import client, watch
from kubernetes.client import ApiException

from libs.kube_emulator import KubeEmulator

pytestmark = pytest.mark.integration


def collect(func: Any, *args: Any, **kwargs: Any) -> list[tuple[str, str, str]]:
    """All (type, name, resourceVersion) events of a watch that ends by its timeoutSeconds."""
    events = []
    for event in watch.Watch().stream(func, *args, **kwargs):
        obj = event["raw_object"]
        events.append((event["type"], obj["metadata"].get("name", ""), obj["metadata"]["resourceVersion"]))
    return events


def test_watch_without_rv_sends_current_objects_then_ends_on_timeout(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    started = time.monotonic()
    events = collect(v1.list_namespaced_config_map, "default", timeout_seconds=1)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "one"), ("ADDED", "two")]
    assert 0.9 <= time.monotonic() - started < 3


def test_watch_resumes_after_resource_version_in_order(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    v1.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("a", "default")
    events = collect(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    rvs = [int(r) for _, _, r in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_live_events_reach_a_running_watch(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    received: list[tuple[str, str, str]] = []

    def run() -> None:
        received.extend(
            collect(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=2)
        )

    thread = threading.Thread(target=run)
    thread.start()
    for i in range(20):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"live-{i:02d}"}})
    thread.join(timeout=10)
    assert [n for _, n, _ in received] == [f"live-{i:02d}" for i in range(20)]


def test_watch_with_label_selector_reports_objects_leaving_it(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", {"metadata": {"name": "sel", "labels": {"app": "x"}}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "other", "labels": {"app": "y"}}})
    v1.patch_namespaced_config_map("sel", "default", {"metadata": {"labels": {"app": "y"}}})
    v1.patch_namespaced_config_map("other", "default", {"metadata": {"labels": {"app": "x"}}})
    events = collect(
        v1.list_namespaced_config_map,
        "default",
        resource_version=rv,
        label_selector="app=x",
        timeout_seconds=1,
    )
    assert [(t, n) for t, n, _ in events] == [("ADDED", "sel"), ("DELETED", "sel"), ("ADDED", "other")]
    by_field = collect(
        v1.list_namespaced_config_map,
        "default",
        resource_version=rv,
        field_selector="metadata.name=other",
        timeout_seconds=1,
    )
    assert [(t, n) for t, n, _ in by_field] == [("ADDED", "other"), ("MODIFIED", "other")]


def test_too_old_resource_version_is_410_gone(tmp_path: Any) -> None:
    from kubernetes import config

    with KubeEmulator.in_thread(rollout=False, history_size=5) as emu:
        api = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        v1 = client.CoreV1Api(api)
        first = v1.create_namespaced_config_map(
            "default", {"metadata": {"name": "c0"}}
        ).metadata.resource_version
        for i in range(1, 10):
            v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as err:
            collect(v1.list_namespaced_config_map, "default", resource_version=first, timeout_seconds=1)
        assert err.value.status == 410 and "Expired" in err.value.reason
        raw = requests.get(
            f"{emu.url}/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "resourceVersion": first},
            timeout=5,
        )
        event = json.loads(raw.text.splitlines()[0])
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        api.close()


def test_bookmarks_when_idle(emu: KubeEmulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    seen = []
    for event in watch.Watch().stream(
        v1.list_namespaced_config_map,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    ):
        seen.append(event)
    bookmarks = [e for e in seen if e["type"] == "BOOKMARK"]
    assert len(bookmarks) >= 2  # the fixture sets a 0.2 s bookmark period
    raw = bookmarks[0]["raw_object"]
    assert raw["kind"] == "ConfigMap" and raw["metadata"] == {"resourceVersion": rv}


def test_watch_single_object_and_legacy_path(emu: KubeEmulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "solo"}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "noise"}})
    reply = requests.get(
        f"{emu.url}/api/v1/watch/namespaces/default/configmaps/solo",
        params={"timeoutSeconds": "1"},
        timeout=5,
    )
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "solo")]


def test_stopping_the_emulator_ends_open_watches(tmp_path: Any) -> None:
    with KubeEmulator.in_thread(rollout=False) as emu:
        url = emu.url
        done = threading.Event()

        def run() -> None:
            requests.get(f"{url}/api/v1/namespaces/default/configmaps", params={"watch": "1"}, timeout=10)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 5
        while not emu.call(lambda: bool(emu.cluster.store.watchers)) and time.monotonic() < deadline:
            time.sleep(0.01)
    thread.join(timeout=5)
    assert done.is_set()


def test_watch_whose_client_disconnects_is_unregistered(emu: KubeEmulator) -> None:
    from .conftest import wait_for

    def watcher_count() -> int:
        return int(emu.call(lambda: sum(len(g) for g in emu.cluster.store.watchers.values())))

    reply = requests.get(
        f"{emu.url}/api/v1/namespaces/default/configmaps", params={"watch": "1"}, stream=True, timeout=5
    )
    wait_for(lambda: watcher_count() == 1)
    reply.close()
    wait_for(lambda: watcher_count() == 0)


def test_concurrent_writers_watchers_see_every_event_in_order(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    writers, per_writer = 4, 15

    def write(worker: int) -> None:
        for i in range(per_writer):
            name = f"w{worker}-{i}"
            v1.create_namespaced_config_map("default", {"metadata": {"name": name}})
            v1.patch_namespaced_config_map(name, "default", {"data": {"n": str(i)}})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    events = collect(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)
    rvs = [int(r) for _, _, r in events]
    assert len(events) == writers * per_writer * 2
    assert rvs == list(range(int(rv) + 1, int(rv) + 1 + len(events)))  # gapless, strictly increasing
    for worker in range(writers):
        for i in range(per_writer):
            mine = [t for t, n, _ in events if n == f"w{worker}-{i}"]
            assert mine == ["ADDED", "MODIFIED"]


def test_send_initial_events_ends_with_a_marked_bookmark(emu: KubeEmulator, api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "init"}})
    reply = requests.get(
        f"{emu.url}/api/v1/namespaces/default/configmaps",
        params={
            "watch": "1",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "1",
        },
        timeout=5,
    )
    events = [json.loads(line) for line in reply.text.splitlines()]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "init"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
