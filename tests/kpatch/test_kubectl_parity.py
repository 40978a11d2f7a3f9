"""The strategic-merge cases, replayed through ``kubectl patch --local`` when kubectl is installed.

kubectl runs k8s.io/apimachinery's strategicpatch on the raw JSON, so this pins the library to the
reference implementation. It is optional: skipped on machines without kubectl.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.kpatch.cases import CASES, Case

pytestmark = [pytest.mark.unit, pytest.mark.kubectl]

KUBECTL = shutil.which("kubectl")


def kubectl_patch(tmp_path: Path, original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | str:
    assert KUBECTL is not None
    source = tmp_path / "object.json"
    source.write_text(json.dumps(original))
    completed = subprocess.run(
        [
            KUBECTL,
            "patch",
            "--local",
            "-f",
            str(source),
            "--type",
            "strategic",
            "-p",
            json.dumps(patch),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=False,
    )
    if completed.returncode != 0:
        return completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("case", [c for c in CASES if not c.kubectl_differs], ids=lambda c: c.id)
def test_kubectl_agrees(tmp_path: Path, case: Case) -> None:
    result = kubectl_patch(tmp_path, case.original, case.patch)
    if case.expected is None:
        assert isinstance(result, str), f"kubectl accepted a patch expected to fail: {result}"
    else:
        assert result == case.expected
