"""Benchmark libs.kustomize.

1. Every case of the shared conformance corpus built in-process, against ``kubectl kustomize``
   on the same case when kubectl is on PATH (goal: in-process time <= 0.2 x kubectl's).
2. Always: p50/p99 of one in-process build of a generated overlay over a 50-resource base.

Run: .venv/bin/python bench/bench_kustomize.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libs.kustomize import KustomizeError, build

CASES_DIR = Path(__file__).resolve().parents[2] / "shared/conformance/kustomize/cases"


def _build_root(case: Path) -> Path:
    root_file = case / "root"
    return case / "input" / root_file.read_text().strip() if root_file.is_file() else case / "input"


def _time_in_process(root: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(KustomizeError):
            build(root).to_yaml()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _time_kubectl(kubectl: str, root: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([kubectl, "kustomize", str(root)], capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_corpus(repeat: int) -> None:
    if not CASES_DIR.is_dir():
        print(f"corpus not found at {CASES_DIR}; skipping")
        return
    kubectl = shutil.which("kubectl")
    cases = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())
    ours_total = theirs_total = 0.0
    ratios = []
    print(f"{'case':58} {'python ms':>10} {'kubectl ms':>11} {'ratio':>7}")
    for case in cases:
        root = _build_root(case)
        ours = _time_in_process(root, repeat)
        ours_total += ours
        if kubectl:
            theirs = _time_kubectl(kubectl, root, max(1, repeat // 10))
            theirs_total += theirs
            ratios.append(ours / theirs)
            print(f"{case.name:58} {ours * 1e3:10.2f} {theirs * 1e3:11.1f} {ours / theirs:7.3f}")
        else:
            print(f"{case.name:58} {ours * 1e3:10.2f} {'-':>11} {'-':>7}")
    print(f"corpus: {len(cases)} cases, in-process total {ours_total * 1e3:.1f} ms")
    if ratios:
        print(
            f"ratio python/kubectl: median {statistics.median(ratios):.3f}, max {max(ratios):.3f}, "
            f"total {ours_total / theirs_total:.3f} (goal <= 0.2)"
        )


def _write_generated_overlay(root: Path, count: int = 50) -> Path:
    base = root / "base"
    overlay = root / "overlay"
    base.mkdir()
    overlay.mkdir()
    names = []
    for i in range(count // 2):
        name = f"svc{i:02d}"
        names.append(name)
        (base / f"{name}.yaml").write_text(
            f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: example.org/{name}:1.0
        envFrom:
        - configMapRef:
            name: shared-settings
        ports:
        - containerPort: 8080
          name: http
        resources:
          requests:
            cpu: 100m
            memory: 64Mi
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: http
"""
        )
    resources = "".join(f"- {n}.yaml\n" for n in names)
    (base / "kustomization.yaml").write_text(
        f"resources:\n{resources}configMapGenerator:\n- name: shared-settings\n  literals:\n  - MODE=base\n"
    )
    images = "".join(f"- name: example.org/{n}\n  newTag: '2.0'\n" for n in names[::3])
    (overlay / "kustomization.yaml").write_text(
        f"""resources:
- ../base
namespace: prod
namePrefix: prod-
labels:
- pairs:
    env: prod
  includeSelectors: true
commonAnnotations:
  owner: platform
images:
{images}replicas:
- name: svc00
  count: 3
configMapGenerator:
- name: shared-settings
  behavior: merge
  literals:
  - MODE=prod
patches:
- target:
    kind: Deployment
  patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: any
    spec:
      template:
        spec:
          containers:
          - name: main
            resources:
              limits:
                memory: 128Mi
- target:
    kind: Service
    name: svc0.*
  patch: |-
    - op: add
      path: /spec/sessionAffinity
      value: None
"""
    )
    return overlay


def bench_generated(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        overlay = _write_generated_overlay(Path(tmp))
        result = build(overlay)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            build(overlay).to_yaml()
            samples.append(time.perf_counter() - start)
        samples.sort()
        p50 = samples[len(samples) // 2]
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(
            f"generated overlay ({len(result.resources)} resources): "
            f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms over {runs} builds"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20, help="in-process builds per corpus case")
    parser.add_argument("--runs", type=int, default=200, help="builds of the generated overlay")
    args = parser.parse_args()
    bench_corpus(args.repeat)
    bench_generated(args.runs)


if __name__ == "__main__":
    main()
