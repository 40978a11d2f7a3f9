"""Generated files, derived from the models: CRDs in deploy/k8s/crds/, event JSON Schemas in docs/events/.

python -m libs.common.gen           # regenerate
python -m libs.common.gen --check   # exit 1 and name the stale files when anything drifted (make lint)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from libs.common.api.crd import render_crd_files
from libs.common.events import ALL_PAYLOADS, CloudEvent, DeadLetter

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "k8s" / "crds"
EVENTS_DIR = ROOT / "docs" / "events"


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def event_schema_files() -> dict[str, str]:
    """One JSON Schema per payload type (`io.sluice.<event>.v<N>.json`), the envelope, dead letters."""
    files: dict[str, str] = {}
    for payload in ALL_PAYLOADS:
        schema = payload.model_json_schema(by_alias=True, mode="serialization")
        schema["$id"] = f"https://sluice.dev/schemas/{payload.type_name()}.json"
        schema["title"] = payload.type_name()
        files[f"{payload.type_name()}.json"] = _json(schema)
    envelope = CloudEvent.model_json_schema(mode="serialization")
    envelope["title"] = "CloudEvents 1.0 envelope (structured JSON mode)"
    files["cloudevent.json"] = _json(envelope)
    files["deadletter.json"] = _json(DeadLetter.model_json_schema(by_alias=True, mode="serialization"))
    return files


def expected_files() -> dict[Path, str]:
    files = {CRD_DIR / name: text for name, text in render_crd_files().items()}
    files.update({EVENTS_DIR / name: text for name, text in event_schema_files().items()})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.common.gen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a generated file is out of date")
    args = parser.parse_args(argv)
    expected = expected_files()
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    extra = [
        p
        for directory in (CRD_DIR, EVENTS_DIR)
        if directory.exists()
        for p in directory.iterdir()
        if p.is_file() and p not in expected
    ]
    if args.check:
        for path in [*stale, *extra]:
            print(f"out of date: {path.relative_to(ROOT)} (run `make gen`)", file=sys.stderr)
        return 1 if stale or extra else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path])
        print(f"wrote {path.relative_to(ROOT)}")
    for path in extra:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
