"""The shared conformance corpus: every case built in-process must match kustomize v5.5.0 byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.kustomize import KustomizeError, build

pytestmark = pytest.mark.unit

CASES_DIR = Path(__file__).resolve().parents[3] / "shared/conformance/kustomize/cases"

# Cases that still fail, with the reason; each must keep failing until it is removed from here.
KNOWN_FAILING: dict[str, str] = {}


def _cases() -> list[str]:
    if not CASES_DIR.is_dir():
        return []
    return sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def _build_root(case: Path) -> Path:
    root_file = case / "root"
    root = case / "input"
    if root_file.is_file():
        root = root / root_file.read_text().strip()
    return root


def _outcome(case: Path) -> tuple[bool, str]:
    """(passed, detail) for one case."""
    root = _build_root(case)
    expected_error = case / "expected-error.txt"
    if expected_error.is_file():
        try:
            build(root)
        except KustomizeError:
            return True, ""
        return False, "build succeeded, an error was expected"
    expected = (case / "expected.yaml").read_text()
    try:
        actual = build(root).to_yaml()
    except KustomizeError as exc:
        return False, f"build failed: {exc}"
    return actual == expected, "output differs from expected.yaml"


def test_corpus_present() -> None:
    assert _cases(), f"conformance corpus not found at {CASES_DIR}"


@pytest.mark.parametrize("name", _cases())
def test_case(name: str) -> None:
    passed, detail = _outcome(CASES_DIR / name)
    if name in KNOWN_FAILING:
        assert not passed, f"{name} passes now: remove it from KNOWN_FAILING"
        return
    assert passed, f"{name}: {detail}"


def test_error_messages_name_the_problem() -> None:
    case = CASES_DIR / "error-missing-resource-file"
    with pytest.raises(KustomizeError, match=r"service\.yaml"):
        build(_build_root(case))
