"""Optional: the real kubectl against the emulator (skipped where kubectl is not installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from libs.kube_emulator import KubeEmulator

from .conftest import GITREPO_CRD

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH (optional check)"),
]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
"""


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(home))

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with KubeEmulator.in_thread(rollout_delay=0.02) as emu:
        yield Kubectl(emu.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def test_server_side_apply_get_patch_delete(kubectl: Kubectl) -> None:
    out = kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert "deployment.apps/web serverside-applied" in out.stdout
    obj = yaml.safe_load(kubectl("get", "deployment", "web", "-o", "yaml").stdout)
    assert obj["spec"]["replicas"] == 2
    assert obj["metadata"]["generation"] == 1
    kubectl("rollout", "status", "deployment/web", "--timeout=10s")
    header, row = kubectl("get", "deployment", "web").stdout.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", "2/2", "2", "2"]
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"replicas":3}}')
    conflict = kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT, check=False)
    assert conflict.returncode != 0
    assert 'conflict with "kubectl-patch" using apps/v1: .spec.replicas' in conflict.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=DEPLOYMENT)
    managed = json.loads(kubectl("get", "deployment", "web", "-o", "json", "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"]) for m in managed["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    kubectl("scale", "deployment", "web", "--replicas=5")
    assert kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").stdout == "5"
    assert kubectl("auth", "can-i", "delete", "deployments").stdout.strip() == "yes"
    kubectl("delete", "deployment", "web")
    gone = kubectl("get", "deployment", "web", check=False)
    assert gone.returncode != 0 and 'deployments.apps "web" not found' in gone.stderr


def test_typed_create_commands_that_send_protobuf(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "flux-system")
    kubectl("create", "configmap", "cfg", "-n", "flux-system", "--from-literal=a=1")
    kubectl("create", "secret", "generic", "creds", "-n", "flux-system", "--from-literal=password=hunter2")
    kubectl("create", "serviceaccount", "robot", "-n", "flux-system")
    assert kubectl("get", "ns", "flux-system", "-o", "jsonpath={.status.phase}").stdout == "Active"
    assert kubectl("get", "cm", "cfg", "-n", "flux-system", "-o", "jsonpath={.data.a}").stdout == "1"
    secret = kubectl("get", "secret", "creds", "-n", "flux-system", "-o", "jsonpath={.data.password}").stdout
    assert secret == "aHVudGVyMg=="
    unsupported = kubectl("create", "deployment", "web", "--image=nginx", check=False)
    assert unsupported.returncode != 0
    assert "protobuf bodies of apps/v1/Deployment are not supported" in unsupported.stderr


def test_crds_tables_and_watch(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(GITREPO_CRD))
    repo = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": "default"},
        "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m"},
    }
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(repo))
    table = kubectl("get", "gitrepo").stdout.splitlines()
    assert table[0].split() == ["NAME", "URL", "AGE"]
    assert table[1].split()[:2] == ["podinfo", "https://github.com/stefanprodan/podinfo"]
    merge = kubectl("patch", "gitrepo", "podinfo", "--type", "merge", "-p", '{"spec":{"suspend":true}}')
    assert "patched" in merge.stdout
    strategic = kubectl("patch", "gitrepo", "podinfo", "-p", '{"spec":{"suspend":false}}', check=False)
    assert strategic.returncode != 0 and "not supported" in strategic.stderr
    bad = dict(repo, spec=dict(repo["spec"], url="ftp://nope"), metadata=dict(repo["metadata"], name="bad"))
    invalid = kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert "spec.url in body should match '^(http|https|ssh)://.*$'" in invalid.stderr
    started = time.monotonic()
    watch = subprocess.Popen(
        ["kubectl", "get", "gitrepo", "--watch", "--request-timeout=2s", "-o", "name"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline().strip()
        assert first == "gitrepository.source.toolkit.fluxcd.io/podinfo"
        second = dict(repo, metadata=dict(repo["metadata"], name="second"))
        kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(second))
        assert watch.stdout.readline().strip() == "gitrepository.source.toolkit.fluxcd.io/second"
        watch.wait(timeout=10)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        for stream in (watch.stdout, watch.stderr):
            if stream is not None:
                stream.close()
    assert time.monotonic() - started < 10
    kubectl("delete", "crd", GITREPO_CRD["metadata"]["name"])
    assert kubectl("get", "gitrepo", check=False).returncode != 0
