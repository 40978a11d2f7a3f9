"""The strategic-merge cases, replayed through kubectl when it is installed.

``kubectl patch --local`` runs k8s.io/apimachinery's strategicpatch on the raw JSON and
``kubectl kustomize`` runs kustomize's own merge, so this pins both styles of the library to the
reference implementations. It is optional: skipped on machines without kubectl.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.kpatch import PatchError, schema_for, strategic_merge_patch
from libs.kpatch.strategic import Style
from tests.kpatch.cases import CASES, Case
from tests.kpatch.randomized import PatchGenerator

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


KUSTOMIZE_CASES = [c for c in CASES if c.expected is not None and not c.kustomize_differs]


@pytest.fixture(scope="module")
def kustomize_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every kustomize-style case built by one ``kubectl kustomize`` run, keyed by case id.

    Each case's object is renamed ``case-<n>`` so that one kustomization can hold them all (a
    strategic-merge patch finds its target by kind and name); the name is restored afterwards.
    """
    assert KUBECTL is not None
    directory = tmp_path_factory.mktemp("kustomize")
    objects, patches = [], []
    for number, case in enumerate(KUSTOMIZE_CASES):
        name = f"case-{number}"
        objects.append({**case.original, "metadata": {**case.original["metadata"], "name": name}})
        target = {"apiVersion": case.original["apiVersion"], "kind": case.original["kind"]}
        patches.append({**target, **case.patch, "metadata": {**case.patch.get("metadata", {}), "name": name}})
    (directory / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    (directory / "patches.yaml").write_text(yaml.safe_dump_all(patches))
    (directory / "kustomization.yaml").write_text(
        "resources: [objects.yaml]\npatches: [{path: patches.yaml}]\n"
    )
    completed = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for built in yaml.safe_load_all(completed.stdout):
        case = KUSTOMIZE_CASES[int(built["metadata"]["name"].removeprefix("case-"))]
        built["metadata"]["name"] = case.original["metadata"]["name"]
        results[case.id] = built
    return results


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("case", [c for c in CASES if not c.kubectl_differs], ids=lambda c: c.id)
def test_kubectl_agrees(tmp_path: Path, case: Case) -> None:
    result = kubectl_patch(tmp_path, case.original, case.patch)
    if case.expected is None:
        assert isinstance(result, str), f"kubectl accepted a patch expected to fail: {result}"
    elif case.server_drops_markers:
        assert decoded(result) == case.expected
    else:
        assert result == case.expected


def decoded(value: Any) -> Any:
    """What the API server keeps of kubectl's raw output: its decoding drops "$" keys and nulls."""
    if isinstance(value, dict):
        return {k: decoded(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [
            decoded(v) for v in value if not (isinstance(v, dict) and v and all(k.startswith("$") for k in v))
        ]
    return value


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("case", KUSTOMIZE_CASES, ids=lambda c: c.id)
def test_kustomize_agrees(kustomize_results: dict[str, dict[str, Any]], case: Case) -> None:
    assert kustomize_results[case.id] == (case.kustomize_expected or case.expected)


# kubectl errors this library does not raise, on purpose (see libs/kpatch/strategic.py)
LENIENT = ("no elements in any of the given slices", "unable to find api field")


def library_patch(original: dict[str, Any], patch: dict[str, Any], style: Style) -> dict[str, Any] | str:
    try:
        return strategic_merge_patch(original, patch, schema_for("apps/v1", "Deployment"), style=style)
    except PatchError as error:
        return str(error)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_random_patches_match_kubectl(tmp_path: Path) -> None:
    generator = PatchGenerator(seed=20261125)
    cases = [generator.case(number) for number in range(32)]

    def run(number: int) -> dict[str, Any] | str:
        directory = tmp_path / str(number)
        directory.mkdir()
        return kubectl_patch(directory, *cases[number])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(len(cases))))
    compared = 0
    for (original, patch), theirs in zip(cases, results, strict=True):
        ours = library_patch(original, patch, "apimachinery")
        if isinstance(theirs, str):
            assert isinstance(ours, str) or any(reason in theirs for reason in LENIENT), (patch, theirs)
            continue
        compared += 1
        assert ours == decoded(theirs), json.dumps({"original": original, "patch": patch})
    assert compared > len(cases) // 2


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_random_patches_match_kustomize(tmp_path: Path) -> None:
    generator = PatchGenerator(seed=1125, kustomize=True)
    cases = [generator.case(number) for number in range(100)]
    target = {"apiVersion": "apps/v1", "kind": "Deployment"}
    patches = [
        {**target, **patch, "metadata": {**patch.get("metadata", {}), "name": original["metadata"]["name"]}}
        for original, patch in cases
    ]
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all([original for original, _ in cases]))
    (tmp_path / "patches.yaml").write_text(yaml.safe_dump_all(patches))
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [objects.yaml]\npatches: [{path: patches.yaml}]\n"
    )
    completed = subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=True,
    )
    built = {obj["metadata"]["name"]: obj for obj in yaml.safe_load_all(completed.stdout)}
    for original, patch in cases:
        ours = library_patch(original, patch, "kustomize")
        assert ours == built[original["metadata"]["name"]], json.dumps({"original": original, "patch": patch})
