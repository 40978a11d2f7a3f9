"""Several processes appending spans to one file never interleave their lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libs.common.runtime.tracing import read_spans

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

WRITER = """
import sys
from libs.common.runtime.tracing import Tracing
tracing = Tracing.configure(sys.argv[1], "file:" + sys.argv[2])
for i in range(200):
    with tracing.span(f"span-{i}", attributes={"padding": "x" * 2000}):
        pass
tracing.shutdown()
"""


def test_concurrent_writers_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"svc-{n}", str(path)], cwd=REPO) for n in range(3)
    ]
    try:
        codes = [writer.wait(timeout=20) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert codes == [0, 0, 0]
    lines = path.read_text().splitlines()
    spans = read_spans(path)
    assert len(lines) == len(spans) == 600
    for n in range(3):
        assert sum(1 for span in spans if span["service"] == f"svc-{n}") == 200
