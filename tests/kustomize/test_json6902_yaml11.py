"""JSON 6902 operations are decoded with YAML 1.1 rules (sigs.k8s.io/yaml, go-yaml v2), as
kustomize does: `y`, `yes` and `on` are booleans there, unlike in resources and SMP patches.
Expected output recorded with kubectl v1.32 (kustomize v5.5.0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.kustomize import build

pytestmark = pytest.mark.unit

CM = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: "1"\n'
OPS = """      - op: add
        path: /metadata/labels
        value: {x: y}
      - op: add
        path: /data/b
        value: yes
"""
EXPECTED = """apiVersion: v1
data:
  a: "1"
  b: true
kind: ConfigMap
metadata:
  labels:
    x: true
  name: c
"""


@pytest.mark.parametrize("field", ["patches", "patchesJson6902"])
def test_json6902_values_follow_yaml_1_1(tmp_path: Path, field: str) -> None:
    (tmp_path / "cm.yaml").write_text(CM)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [cm.yaml]\n{field}:\n  - target: {{kind: ConfigMap, name: c, version: v1}}\n"
        f"    patch: |-\n{OPS}"
    )
    assert build(tmp_path).to_yaml() == EXPECTED
