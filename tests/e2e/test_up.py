"""`sluice up` as a user runs it: a real process tree, real servers, then SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from libs.common.api.registry import STORAGE_KINDS
from libs.common.kube import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def http(url: str, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Up:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.log = (state.parent / f"{state.name}-up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "libs.cli.main", "up", "--state-dir", str(state)],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def endpoints(self, timeout: float = 120) -> dict[str, Any]:
        path = self.state / "endpoints.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert self.proc.poll() is None, f"sluice up exited: {self.output()}"
            assert time.monotonic() < deadline, f"no endpoints.json within {timeout}s: {self.output()}"
            time.sleep(0.1)
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def stop(self) -> tuple[int, set[int]]:
        tree = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=90)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        deadline = time.monotonic() + 5
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        return code, {p for p in tree if alive(p)}


async def kube_objects(kubeconfig: str) -> tuple[set[str], dict[str, Any] | None]:
    kube = Kube.from_config(kubeconfig)
    try:
        crds, _ = await kube.list_objects("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        repo = await kube.get("source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo", "flux-system")
        return {c["metadata"]["name"] for c in crds}, repo
    finally:
        await kube.close()


async def create_repo(kubeconfig: str) -> None:
    kube = Kube.from_config(kubeconfig)
    try:
        await kube.create(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "podinfo", "namespace": "flux-system"},
                "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "5m"},
            }
        )
    finally:
        await kube.close()


def test_up_runs_the_system_and_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = Up(state)
    try:
        ep = up.endpoints()
        assert set(ep) >= {"nats", "kubeconfig", "kube_api", "registry", "git_root", "receiver", "artifacts"}
        assert set(ep["services"]) == {"source", "build", "apply", "image_scan", "image_update", "notify"}
        assert ep["kubeconfig"] == str(state / "kubeconfig")
        assert Path(ep["git_root"]).is_dir()

        crds, _ = asyncio.run(kube_objects(ep["kubeconfig"]))
        assert {f"{k.PLURAL}.{k.GROUP}" for k in STORAGE_KINDS} <= crds
        assert len(STORAGE_KINDS) == 13

        for name, url in ep["services"].items():
            status, body = http(f"{url}/readyz")
            assert status == 200, (name, body)
            status, body = http(f"{url}/metrics")
            assert status == 200 and b"sluice_reconcile_duration_seconds" in body, name
        assert http(f"{ep['receiver']}/hook/{'0' * 64}", "POST")[0] == 404
        assert http(f"{ep['artifacts']}/gitrepository/flux-system/none/x.tar.gz")[0] == 404
        assert http(f"http://{ep['registry']}/v2/")[0] == 200

        asyncio.run(create_repo(ep["kubeconfig"]))
        deadline = time.monotonic() + 30
        while True:
            _, repo = asyncio.run(kube_objects(ep["kubeconfig"]))
            conditions = {c["type"]: c for c in ((repo or {}).get("status") or {}).get("conditions") or []}
            if "Ready" in conditions:
                break
            assert time.monotonic() < deadline, "the source service never reconciled the GitRepository"
            time.sleep(0.2)
        assert conditions["Ready"]["status"] == "False"
        assert conditions["Ready"]["reason"] == "NotImplemented"

        deadline = time.monotonic() + 10
        gauge = 'sluice_objects{kind="GitRepository",ready="False"} 1.0'
        while gauge not in http(f"{ep['services']['source']}/metrics")[1].decode():
            assert time.monotonic() < deadline, "the objects gauge never counted the GitRepository"
            time.sleep(0.2)

        table = subprocess.run(
            [sys.executable, "-m", "libs.cli.main", "--kubeconfig", ep["kubeconfig"], "get", "gitrepo", "-A"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
        assert table[0].split() == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
        assert table[1].split()[:4] == ["flux-system", "podinfo", "False", "False"]
        assert "does not reconcile GitRepository yet" in table[1]
    finally:
        code, leftovers = up.stop()
    assert code == 0, up.output()
    assert not leftovers, f"processes left running after sluice up stopped: {leftovers}"
    assert not (state / "endpoints.json").exists()

    # A second run on the same directory resumes the stored state.
    again = Up(state)
    try:
        ep = again.endpoints()
        _, repo = asyncio.run(kube_objects(ep["kubeconfig"]))
        assert repo is not None and repo["spec"]["url"] == "https://github.com/stefanprodan/podinfo"
    finally:
        code, leftovers = again.stop()
    assert code == 0 and not leftovers
