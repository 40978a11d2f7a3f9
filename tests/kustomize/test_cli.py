"""``python -m libs.kustomize build DIR`` prints the YAML or ``Error: ...`` with exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.kustomize.cli import main

pytestmark = pytest.mark.unit


def test_build_prints_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator:\n- name: x\n  literals:\n  - a=b\n")
    assert main(["build", str(tmp_path)]) == 0
    out = capsys.readouterr()
    # recorded with kubectl kustomize (kustomize v5.5.0)
    assert out.out == "apiVersion: v1\ndata:\n  a: b\nkind: ConfigMap\nmetadata:\n  name: x-4h2mbtbbt6\n"
    assert out.err == ""


def test_build_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    assert main(["build", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("Error: accumulating resources: accumulation err='accumulating resources from ")
    assert out.err.count("\n") == 1
