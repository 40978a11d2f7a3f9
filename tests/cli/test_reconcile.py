"""`sluice reconcile|suspend|resume`: the requestedAt annotation, waiting for the controller's
lastHandledReconcileAt, flux's progress lines and exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from libs.cli.main import main
from libs.common.api import meta
from libs.common.kube import Kube
from tests.cli.conftest import FakeController, failed, kube_run, ready

pytestmark = pytest.mark.integration

GIT = ("source.toolkit.fluxcd.io/v1", "GitRepository")
KS = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
IMAGE_REPO = ("image.toolkit.fluxcd.io/v1", "ImageRepository")
IUA = ("image.toolkit.fluxcd.io/v1", "ImageUpdateAutomation")

ARTIFACT = {
    "revision": "main@sha1:1234567",
    "path": "gitrepository/flux-system/podinfo/1234567.tar.gz",
    "url": "http://source/podinfo.tar.gz",
    "digest": "sha256:00",
    "lastUpdateTime": "2026-01-01T00:00:00Z",
}


def seed(kubeconfig: str) -> None:
    k = ["--kubeconfig", kubeconfig]
    for argv in (
        ["create", "source", "git", "podinfo", "--url", "https://example.com/podinfo", "--branch", "main"],
        ["create", "kustomization", "apps", "--source", "podinfo", "--path", "./deploy"],
        ["create", "image", "repository", "podinfo", "--image", "ghcr.io/stefanprodan/podinfo"],
        [
            "create", "image", "update", "podinfo", "--git-repo-ref", "podinfo",
            "--author-email", "bot@example.com",
        ],
    ):  # fmt: skip
        assert main([*k, *argv]) == 0


def obj(kubeconfig: str, api_version: str, kind: str, name: str) -> dict[str, Any]:
    async def read(kube: Kube) -> dict[str, Any]:
        found = await kube.get(api_version, kind, name, "flux-system")
        assert found is not None
        return found

    return kube_run(kubeconfig, read)


def test_reconcile_waits_for_the_controller_and_prints_the_outcome(
    kubeconfig: str, controller: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig)
    capsys.readouterr()
    controller.answer(*GIT, "podinfo", ready("stored artifact", artifact=ARTIFACT))
    controller.answer(*KS, "apps", ready("Applied revision", lastAppliedRevision="main@sha1:1234567"))
    controller.answer(
        *IMAGE_REPO,
        "podinfo",
        ready("ok", lastScanResult={"tagCount": 7, "scanTime": "2026-01-01T00:00:00Z"}),
    )
    controller.answer(*IUA, "podinfo", ready("pushed commit 'abc1234' to branch 'main'"))
    k = ["--kubeconfig", kubeconfig, "--namespace", "flux-system"]

    assert main([*k, "reconcile", "source", "git", "podinfo", "--timeout", "20s"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "► annotating GitRepository podinfo in flux-system namespace",
        "✔ GitRepository annotated",
        "◎ waiting for GitRepository reconciliation",
        "✔ fetched revision main@sha1:1234567",
    ]
    git = obj(kubeconfig, *GIT, "podinfo")
    requested = git["metadata"]["annotations"][meta.RECONCILE_REQUEST_ANNOTATION]
    assert git["status"]["lastHandledReconcileAt"] == requested

    assert main([*k, "reconcile", "kustomization", "apps", "--with-source", "--timeout", "20s"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "► annotating GitRepository podinfo in flux-system namespace"
    assert "► annotating Kustomization apps in flux-system namespace" in out
    assert out[-1] == "✔ applied revision main@sha1:1234567"
    assert controller.handled.count("GitRepository/podinfo") == 2

    assert main([*k, "reconcile", "image", "repository", "podinfo", "--timeout", "20s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "✔ scan fetched 7 tags"
    assert main([*k, "reconcile", "image", "update", "podinfo", "--timeout", "20s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "✔ pushed commit 'abc1234' to branch 'main'"


def test_reconcile_reports_failure_timeout_and_missing_objects(
    kubeconfig: str, controller: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig)
    capsys.readouterr()
    k = ["--kubeconfig", kubeconfig]
    controller.answer(*GIT, "podinfo", failed("failed to checkout and determine revision: auth failed"))
    assert main([*k, "reconcile", "source", "git", "podinfo", "--timeout", "20s"]) == 1
    assert (
        capsys.readouterr().out.splitlines()[-1] == "✗ failed to checkout and determine revision: auth failed"
    )

    # Nobody answers the Kustomization: the deadline ends the wait.
    assert main([*k, "reconcile", "ks", "apps", "--timeout", "1s"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "✗ timed out waiting for Kustomization flux-system/apps to be reconciled"

    assert main([*k, "reconcile", "image", "repository", "nope"]) == 1
    assert "✗ ImageRepository flux-system/nope not found" in capsys.readouterr().out
    assert main([*k, "reconcile", "image", "nonsense", "x"]) == 1
    assert "unknown kind 'image nonsense'" in capsys.readouterr().err


def test_suspend_and_resume(
    kubeconfig: str, controller: FakeController, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(kubeconfig)
    capsys.readouterr()
    k = ["--kubeconfig", kubeconfig]
    controller.answer(*IUA, "podinfo", ready("repository up-to-date"))

    assert main([*k, "suspend", "image", "update", "podinfo"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "► suspending ImageUpdateAutomation podinfo in flux-system namespace",
        "✔ ImageUpdateAutomation suspended",
    ]
    assert obj(kubeconfig, *IUA, "podinfo")["spec"]["suspend"] is True
    assert main([*k, "get", "images", "update"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1] == "True"  # SUSPENDED

    assert main([*k, "reconcile", "image", "update", "podinfo"]) == 1
    assert "✗ ImageUpdateAutomation flux-system/podinfo is suspended" in capsys.readouterr().out

    assert main([*k, "resume", "image", "update", "podinfo", "--timeout", "20s"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "► resuming ImageUpdateAutomation podinfo in flux-system namespace",
        "✔ ImageUpdateAutomation resumed",
        "◎ waiting for ImageUpdateAutomation reconciliation",
        "✔ repository up-to-date",
    ]
    assert obj(kubeconfig, *IUA, "podinfo")["spec"]["suspend"] is False

    assert main([*k, "suspend", "kustomization", "missing"]) == 1
    assert "✗ Kustomization flux-system/missing not found" in capsys.readouterr().out
