"""`sluice create … [--export]` and `sluice get …`: the YAML a user would commit, the objects
applied to the cluster, and flux's tables."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from libs.cli.main import main
from libs.common.api import validate_object
from libs.common.kube import Kube
from tests.cli.conftest import kube_run

pytestmark = pytest.mark.integration

GIT = [
    "create",
    "source",
    "git",
    "podinfo",
    "--url",
    "https://github.com/stefanprodan/podinfo",
    "--branch",
    "master",
]
KS = [
    "create",
    "kustomization",
    "podinfo",
    "--source",
    "GitRepository/podinfo",
    "--path",
    "./kustomize",
    "--prune",
]
REPO = [
    "create",
    "image",
    "repository",
    "podinfo",
    "--image",
    "ghcr.io/stefanprodan/podinfo",
    "--interval",
    "5m",
]
POLICY = [
    "create",
    "image",
    "policy",
    "podinfo",
    "--image-ref",
    "podinfo",
    "--select-numeric",
    "asc",
    "--filter-regex",
    "^main-[a-f0-9]+-(?P<ts>[0-9]+)",
    "--filter-extract",
    "$ts",
]
UPDATE = [
    "create", "image", "update", "flux-system", "--git-repo-ref", "podinfo",
    "--git-repo-path", "./clusters/my-cluster", "--checkout-branch", "main", "--push-branch", "image-updates",
    "--author-name", "fluxcdbot", "--author-email", "fluxcdbot@users.noreply.github.com",
    "--commit-template", "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
    "--interval", "30m",
]  # fmt: skip


def export(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--export"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("---\n")
    obj = yaml.safe_load(text)
    assert list(obj) == ["apiVersion", "kind", "metadata", "spec"]
    validate_object(obj)
    return dict(obj)


def test_export_prints_flux_yaml_for_the_five_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    git = export(GIT, capsys)
    assert git["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert git["metadata"] == {"name": "podinfo", "namespace": "flux-system"}
    assert git["spec"] == {
        "interval": "1m0s",
        "ref": {"branch": "master"},
        "url": "https://github.com/stefanprodan/podinfo",
    }
    assert list(git["spec"]) == ["interval", "ref", "url"]  # alphabetical, like flux

    ks = export(KS, capsys)
    assert (ks["apiVersion"], ks["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert ks["spec"] == {
        "interval": "1m0s",
        "path": "./kustomize",
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
    }

    repo = export(REPO, capsys)
    assert (repo["apiVersion"], repo["kind"]) == ("image.toolkit.fluxcd.io/v1", "ImageRepository")
    assert repo["spec"] == {"image": "ghcr.io/stefanprodan/podinfo", "interval": "5m0s"}

    policy = export(POLICY, capsys)
    assert policy["kind"] == "ImagePolicy"
    assert policy["spec"] == {
        "filterTags": {"extract": "$ts", "pattern": "^main-[a-f0-9]+-(?P<ts>[0-9]+)"},
        "imageRepositoryRef": {"name": "podinfo"},
        "policy": {"numerical": {"order": "asc"}},
    }
    semver = export(
        ["create", "image", "policy", "p", "--image-ref", "podinfo", "--select-semver", ">=1.0.0"], capsys
    )
    assert semver["spec"]["policy"] == {"semver": {"range": ">=1.0.0"}}
    alpha = export(["create", "image", "policy", "p", "--image-ref", "r", "--select-alpha", "desc"], capsys)
    assert alpha["spec"]["policy"] == {"alphabetical": {"order": "desc"}}

    update = export(UPDATE, capsys)
    assert update["kind"] == "ImageUpdateAutomation"
    assert update["spec"] == {
        "git": {
            "checkout": {"ref": {"branch": "main"}},
            "commit": {
                "author": {"email": "fluxcdbot@users.noreply.github.com", "name": "fluxcdbot"},
                "messageTemplate": "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
            },
            "push": {"branch": "image-updates"},
        },
        "interval": "30m0s",
        "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
        "update": {"path": "./clusters/my-cluster", "strategy": "Setters"},
    }


def test_export_namespace_and_minimal_image_update(capsys: pytest.CaptureFixture[str]) -> None:
    update = export(
        ["create", "image", "update", "app", "-n", "apps", "--git-repo-ref", "g", "--author-email", "a@b"],
        capsys,
    )
    assert update["metadata"] == {"name": "app", "namespace": "apps"}
    assert update["spec"] == {
        "git": {"commit": {"author": {"email": "a@b"}}},
        "interval": "1m0s",
        "sourceRef": {"kind": "GitRepository", "name": "g"},
        "update": {"strategy": "Setters"},
    }


def test_invalid_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "image", "policy", "p", "--image-ref", "r", "--export"]) == 1
    assert "exactly one of --select-semver" in capsys.readouterr().err
    assert (
        main(["create", "source", "git", "x", "--url", "https://h/r", "--interval", "soon", "--export"]) == 1
    )
    assert "invalid duration" in capsys.readouterr().err
    assert main(["create", "image", "update", "u", "--git-repo-ref", "g", "--export"]) == 1
    assert "--author-email is required" in capsys.readouterr().err


def get_table(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    assert main(argv) == 0
    return [line.split("  ") for line in capsys.readouterr().out.splitlines()]


def test_create_applies_and_get_prints_flux_tables(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    k = ["--kubeconfig", kubeconfig]
    for argv in (GIT, KS, REPO, POLICY, UPDATE):
        assert main([*k, *argv]) == 0
        out = capsys.readouterr().out
        assert out.startswith("► applying ") and out.rstrip().endswith("created")
    # Again, changed: server-side apply updates in place.
    assert main([*k, *GIT[:-1], "main"]) == 0
    assert "✔ GitRepository updated" in capsys.readouterr().out

    async def read_and_set_status(kube: Kube) -> dict[str, Any]:
        git = await kube.get("source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo", "flux-system")
        policy = await kube.get("image.toolkit.fluxcd.io/v1", "ImagePolicy", "podinfo", "flux-system")
        assert git is not None and policy is not None
        cond = {
            "type": "Ready",
            "status": "True",
            "reason": "Succeeded",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        await kube.patch_status(
            "source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo", "flux-system",
            {"artifact": {"revision": "main@sha1:abc", "path": "p", "url": "http://x/p",
                          "digest": "sha256:00", "lastUpdateTime": "2026-01-01T00:00:00Z"},
             "conditions": [{**cond, "message": "stored artifact for revision 'main@sha1:abc'"}]},
            field_manager="test",
        )  # fmt: skip
        await kube.patch_status(
            "image.toolkit.fluxcd.io/v1", "ImagePolicy", "podinfo", "flux-system",
            {"latestRef": {"name": "ghcr.io/stefanprodan/podinfo", "tag": "main-abc-2"},
             "conditions": [{**cond, "message": "Latest image tag for podinfo resolved to main-abc-2"}]},
            field_manager="test",
        )  # fmt: skip
        return {"git": git, "policy": policy}

    objs = kube_run(kubeconfig, read_and_set_status)
    assert objs["git"]["spec"]["ref"] == {"branch": "main"}
    assert objs["git"]["spec"]["url"] == "https://github.com/stefanprodan/podinfo"
    assert objs["policy"]["spec"]["filterTags"]["extract"] == "$ts"

    rows = get_table([*k, "get", "sources", "git"], capsys)
    assert [c.strip() for c in rows[0] if c] == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert [c.strip() for c in rows[1] if c] == [
        "podinfo", "main@sha1:abc", "False", "True", "stored artifact for revision 'main@sha1:abc'",
    ]  # fmt: skip

    rows = get_table([*k, "get", "kustomizations"], capsys)
    assert [c.strip() for c in rows[1] if c] == ["podinfo", "False", "Unknown", "waiting to be reconciled"]

    rows = get_table([*k, "get", "images", "policy"], capsys)
    assert [c.strip() for c in rows[0] if c] == ["NAME", "LATEST IMAGE", "READY", "MESSAGE"]
    assert [c.strip() for c in rows[1] if c] == [
        "podinfo", "ghcr.io/stefanprodan/podinfo:main-abc-2", "True",
        "Latest image tag for podinfo resolved to main-abc-2",
    ]  # fmt: skip

    assert main([*k, "get", "images", "all"]) == 0
    out = capsys.readouterr().out
    tables = out.split("\n\n")
    assert [t.splitlines()[0].split()[:3] for t in tables] == [
        ["NAME", "LAST", "SCAN"], ["NAME", "LATEST", "IMAGE"], ["NAME", "LAST", "RUN"],
    ]  # fmt: skip
    assert "imagerepository/podinfo" in tables[0]
    assert "imageupdateautomation/flux-system" in tables[2]

    # The generic forms keep working: one kind by any name, a single object, all namespaces.
    rows = get_table([*k, "get", "imagepolicy", "podinfo", "-A"], capsys)
    assert [c.strip() for c in rows[0] if c][:2] == ["NAMESPACE", "NAME"]
    assert rows[1][0] == "flux-system"
    assert main([*k, "get", "all"]) == 0
    assert "gitrepository/podinfo" in capsys.readouterr().out
    assert main([*k, "get", "images", "nonsense"]) == 1
    assert "✗ unknown kind 'images nonsense'" in capsys.readouterr().err

    # Like kubectl, the global options may follow the command.
    assert main(["get", "sources", "git", "--kubeconfig", kubeconfig, "-n", "elsewhere"]) == 0
    assert capsys.readouterr().out == "no sources git objects found\n"
    assert main(["get", "sources", "git", "podinfo", "--kubeconfig", kubeconfig, "-n", "flux-system"]) == 0
    assert "main@sha1:abc" in capsys.readouterr().out
