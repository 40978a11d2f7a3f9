"""Packing a checkout into an artifact: exclusions, symlinks, sparse checkout, include paths and
the fields reported as unsupported."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from libs.common.api.source.gitrepository import GitRepository, GitRepositoryInclude
from services.source.gitrepository import _build, _include_path, unsupported_fields

pytestmark = pytest.mark.unit


def names(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m.linkname for m in tar.getmembers() if not m.isdir()}


def tree(root: Path) -> Path:
    (root / "apps").mkdir(parents=True)
    (root / "apps" / "a.yaml").write_text("a: 1\n")
    (root / "infra").mkdir()
    (root / "infra" / "b.yaml").write_text("b: 1\n")
    (root / "logo.png").write_text("png")
    os.symlink("apps/a.yaml", root / "inside")
    os.symlink("/etc/hostname", root / "absolute")
    os.symlink("../../outside", root / "apps" / "escapes")
    return root


def test_build_applies_defaults_and_keeps_only_links_inside_the_tree(tmp_path: Path) -> None:
    packed = names(_build(tree(tmp_path / "t"), None, None))
    assert packed == {"apps/a.yaml": "", "infra/b.yaml": "", "inside": "apps/a.yaml"}


def test_build_with_ignore_and_sparse_checkout(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    assert set(names(_build(root, "!*.png\n/infra/\n", None))) == {"apps/a.yaml", "logo.png", "inside"}
    assert set(names(_build(root, None, ["./apps", "nothing/here"]))) == {"apps/a.yaml"}


def test_symlinked_sourceignore_is_not_read(tmp_path: Path) -> None:
    root = tree(tmp_path / "t")
    (tmp_path / "elsewhere").write_text("*.yaml\n")
    os.symlink(str(tmp_path / "elsewhere"), root / ".sourceignore")
    assert {"apps/a.yaml", "infra/b.yaml"} <= set(names(_build(root, None, None)))


@pytest.mark.parametrize(
    ("from_path", "to_path", "expected"),
    [
        (None, None, ("", "base")),
        (".", "lib", ("", "lib")),
        ("./deploy/", "/vendor/base", ("deploy", "vendor/base")),
        ("..foo", "x", ("..foo", "x")),
    ],
)
def test_include_paths(from_path: str | None, to_path: str | None, expected: tuple[str, str]) -> None:
    include = GitRepositoryInclude.model_validate(
        {"repository": {"name": "base"}, "fromPath": from_path, "toPath": to_path}
    )
    assert _include_path(include) == expected


@pytest.mark.parametrize(("from_path", "to_path"), [("../x", "y"), ("x", "a/../../y"), ("..", None)])
def test_include_paths_leaving_the_root_are_rejected(from_path: str, to_path: str | None) -> None:
    include = GitRepositoryInclude.model_validate(
        {"repository": {"name": "base"}, "fromPath": from_path, "toPath": to_path}
    )
    with pytest.raises(ValueError, match="leaves the repository root"):
        _include_path(include)


def test_unsupported_fields_are_named() -> None:
    obj = GitRepository.model_validate(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": {
                "url": "ssh://git@h/r.git",
                "interval": "1m",
                "provider": "azure",
                "serviceAccountName": "sa",
                "verify": {"secretRef": {"name": "keys"}},
                "proxySecretRef": {"name": "proxy"},
            },
        }
    )
    found = " ".join(unsupported_fields(obj))
    for field in ("spec.provider=azure", "spec.serviceAccountName", "spec.proxySecretRef"):
        assert field in found
