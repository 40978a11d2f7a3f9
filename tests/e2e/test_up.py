"""`sluice up` as a user runs it: a real process tree, real servers, then SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
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
from libs.devservers.git import init_bare, log_messages, seed_repo

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
    def __init__(self, state: Path, *extra: str) -> None:
        self.state = state
        self.log = (state.parent / f"{state.name}-up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "libs.cli.main", "up", "--state-dir", str(state), *extra],
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


async def kube_objects(kubeconfig: str) -> tuple[set[str], dict[str, Any] | None, dict[str, Any] | None]:
    kube = Kube.from_config(kubeconfig)
    try:
        crds, _ = await kube.list_objects("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        repo = await kube.get("source.toolkit.fluxcd.io/v1", "GitRepository", "demo", "flux-system")
        images = await kube.get("source.toolkit.fluxcd.io/v1", "HelmRepository", "charts", "flux-system")
        return {c["metadata"]["name"] for c in crds}, repo, images
    finally:
        await kube.close()


async def create_objects(kubeconfig: str, git_url: str) -> None:
    kube = Kube.from_config(kubeconfig)
    try:
        await kube.create(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "demo", "namespace": "flux-system"},
                "spec": {"url": git_url, "interval": "5m", "ref": {"branch": "main"}},
            }
        )
        await kube.create(
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "HelmRepository",
                "metadata": {"name": "charts", "namespace": "flux-system"},
                "spec": {"url": "https://charts.example.com", "interval": "5m"},
            }
        )
    finally:
        await kube.close()


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def test_up_runs_the_system_and_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = Up(state)
    try:
        ep = up.endpoints()
        assert set(ep) >= {"nats", "kubeconfig", "kube_api", "registry", "git_root", "receiver", "artifacts"}
        assert set(ep["services"]) == {"source", "build", "apply", "image_scan", "image_update", "notify"}
        assert ep["kubeconfig"] == str(state / "kubeconfig")
        assert Path(ep["git_root"]).is_dir()

        crds, _, _ = asyncio.run(kube_objects(ep["kubeconfig"]))
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

        # A repository in the stack's Git root becomes a served artifact; kinds not built yet say honestly
        # that they are not reconciled yet.
        git_url = Path(ep["git_root"], "demo.git").as_uri()
        init_bare(Path(ep["git_root"]) / "demo.git")
        commit = seed_repo(
            git_url, {"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}
        )
        asyncio.run(create_objects(ep["kubeconfig"], git_url))
        deadline = time.monotonic() + 60
        while True:
            _, repo, images = asyncio.run(kube_objects(ep["kubeconfig"]))
            if conditions(repo).get("Ready", {}).get("status") == "True" and "Ready" in conditions(images):
                break
            assert time.monotonic() < deadline, (repo, images, up.output())
            time.sleep(0.2)
        assert repo is not None
        artifact = repo["status"]["artifact"]
        assert artifact["revision"] == f"main@sha1:{commit}"
        assert artifact["url"].startswith(ep["artifacts"])
        assert http(artifact["url"])[0] == 200
        assert conditions(images)["Ready"]["reason"] == "NotImplemented"

        deadline = time.monotonic() + 10
        gauge = 'sluice_objects{kind="HelmRepository",ready="False"} 1.0'
        while gauge not in http(f"{ep['services']['source']}/metrics")[1].decode():
            assert time.monotonic() < deadline, "the objects gauge never counted the HelmRepository"
            time.sleep(0.2)

        table = subprocess.run(
            [sys.executable, "-m", "libs.cli.main", "--kubeconfig", ep["kubeconfig"], "get", "all", "-A"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        rows = {
            line.split()[1]: line.split() for line in table.splitlines() if line.startswith("flux-system")
        }
        assert rows["gitrepository/demo"][2:5] == [f"main@sha1:{commit}", "False", "True"]
        assert rows["helmrepository/charts"][2:4] == ["False", "False"]
        assert "does not reconcile HelmRepository yet" in table
    finally:
        code, leftovers = up.stop()
    assert code == 0, up.output()
    assert not leftovers, f"processes left running after sluice up stopped: {leftovers}"
    assert not (state / "endpoints.json").exists()

    # A second run on the same directory resumes the stored state.
    again = Up(state)
    try:
        ep = again.endpoints()
        _, repo, _ = asyncio.run(kube_objects(ep["kubeconfig"]))
        assert repo is not None and repo["spec"]["url"] == git_url
    finally:
        code, leftovers = again.stop()
    assert code == 0 and not leftovers


def test_make_run_demo_walks_the_image_update_guide(tmp_path: Path) -> None:
    """`make run` = `sluice up --demo`: the guide's objects, the policy not ready on 0.0.x tags with
    Flux's message, then 1.0.1 and 1.0.2 reaching the Deployment, each hop timed."""
    up = Up(tmp_path / "state", "--demo")
    try:
        up.endpoints()
        deadline = time.monotonic() + 120
        while "Sluice is running" not in up.output():
            assert up.proc.poll() is None and time.monotonic() < deadline, up.output()
            time.sleep(0.2)
        out = up.output()
        assert "the demo stopped" not in out, out
        assert "ImagePolicy podinfo not ready: unable to determine latest version from provided list" in out
        for tag in ("1.0.1", "1.0.2"):
            assert re.search(rf"✔ \+ *\d+ ms  Deployment runs {re.escape(tag)}", out), out
        messages = log_messages(tmp_path / "state" / "git" / "flux-image-updates.git")
        assert any(m.endswith(":1.0.2") for m in messages), messages
    finally:
        code, leftovers = up.stop()
    assert code == 0 and not leftovers
