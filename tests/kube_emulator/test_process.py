"""The emulator as a process, persistence across restarts, and the async (same-loop) API."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client, config

from libs.kube_emulator import KubeEmulator

from .conftest import GITREPO_CRD

pytestmark = pytest.mark.integration


def test_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with KubeEmulator.in_thread(state_file=state, rollout=False) as emu:
        api = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        client.ApiextensionsV1Api(api).create_custom_resource_definition(GITREPO_CRD)
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "source.toolkit.fluxcd.io",
            "v1",
            "default",
            "gitrepositories",
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "kept"},
                "spec": {"url": "https://x.example/r", "interval": "1m"},
            },
        )
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "team"}})
        last_rv = int(
            client.CoreV1Api(api)
            .create_namespaced_config_map("team", {"metadata": {"name": "c"}})
            .metadata.resource_version
        )
        api.close()
    assert state.exists() and not list(tmp_path.glob(".state.json.*"))
    with KubeEmulator.in_thread(state_file=state, rollout=False) as emu:
        api = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        got = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "source.toolkit.fluxcd.io", "v1", "default", "gitrepositories", "kept"
        )
        assert got["spec"]["timeout"] == "60s"
        assert client.CoreV1Api(api).read_namespaced_config_map("c", "team").metadata.resource_version == str(
            last_rv
        )
        fresh = client.CoreV1Api(api).create_namespaced_config_map("team", {"metadata": {"name": "d"}})
        assert int(fresh.metadata.resource_version) > last_rv
        api.close()


async def test_runs_on_the_callers_event_loop() -> None:
    async with KubeEmulator(rollout=False) as emu, aiohttp.ClientSession() as http:
        async with http.post(
            f"{emu.url}/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "a"}}
        ) as reply:
            assert reply.status == 201
        async with http.get(f"{emu.url}/api/v1/namespaces/default/configmaps/a") as reply:
            assert (await reply.json())["metadata"]["name"] == "a"
    with pytest.raises(RuntimeError):
        _ = emu.url


async def test_manual_start_stop(tmp_path: Path) -> None:
    emu = KubeEmulator(rollout=False, state_file=tmp_path / "s.json")
    await emu.start()
    try:
        assert emu.url.startswith("http://127.0.0.1:")
    finally:
        await emu.stop()
    assert (tmp_path / "s.json").exists()


def test_process_prints_url_and_saves_state_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "libs.kube_emulator",
            "--port",
            "0",
            "--state",
            str(state),
            "--kubeconfig",
            str(kubeconfig),
            "--no-rollout",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = config.new_client_from_config(str(kubeconfig))
        assert api.configuration.host == url
        client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "from-process"}})
        api.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert "from-process" in state.read_text()


def test_save_on_demand_from_another_thread(tmp_path: Path) -> None:
    with KubeEmulator.in_thread(rollout=False) as emu:
        api = config.new_client_from_config(str(emu.write_kubeconfig(tmp_path / "kc")))
        client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "snap"}})
        emu.save(tmp_path / "snapshot.json")
        api.close()
    assert "snap" in (tmp_path / "snapshot.json").read_text()
