"""The `sluice kustomize build DIR` contract, checked by the shared conformance runner.

`../shared/conformance/kustomize/run.py` runs the real command line against every case recorded
from kustomize v5.5.0 and compares stdout byte for byte (error cases: a non-zero exit).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "conformance" / "kustomize"


def test_every_case_passes_byte_identical_through_the_cli() -> None:
    assert (CORPUS / "run.py").exists(), f"the conformance corpus is expected at {CORPUS}"
    cases = sorted(p.name for p in (CORPUS / "cases").iterdir() if p.is_dir())
    sluice = Path(sys.executable).parent / "sluice"
    result = subprocess.run(
        [sys.executable, str(CORPUS / "run.py"), "--cmd", f"{sluice} kustomize build {{dir}}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    summary = re.search(r"conformance: (\d+)/(\d+) passed \((\d+) byte-identical\)", result.stdout)
    assert summary, result.stdout[-2000:]
    passed, total, identical = map(int, summary.groups())
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert total == len(cases)
    assert passed == total, failures
    assert identical == total, [line for line in result.stdout.splitlines() if "bytes differ" in line]
