"""The Kubernetes emulator fixture answers the official client through its kubeconfig."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kubernetes import client, config

from libs.devservers.ports import LOOPBACK_OPENER, http_status
from tests.harness.kube_fixtures import KubeApi, kubeconfig_server

pytestmark = pytest.mark.integration


def test_kube_emulator_serves_the_api_through_its_kubeconfig(kube_emulator: KubeApi) -> None:
    assert kube_emulator.emulator is not None
    assert kube_emulator.url.startswith("http://127.0.0.1:")
    with LOOPBACK_OPENER.open(f"{kube_emulator.url}/api") as response:
        assert "v1" in json.loads(response.read())["versions"]

    api = config.new_client_from_config(config_file=str(kube_emulator.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        name = "harness-check"
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "v"})
        )
        assert core.read_namespaced_config_map(name, "default").data == {"k": "v"}
        core.delete_namespaced_config_map(name, "default")
    finally:
        api.close()


def test_emulator_thread_starts_answers_and_stops_leaving_nothing(tmp_path: Path) -> None:
    from libs.kube_emulator import KubeEmulator

    before = set(threading.enumerate())
    with KubeEmulator.in_thread() as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        assert kubeconfig_server(kubeconfig) == emulator.url
        assert http_status(f"{emulator.url}/version") == 200
        url = emulator.url
    assert set(threading.enumerate()) <= before
    assert http_status(f"{url}/version") is None
