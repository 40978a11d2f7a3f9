"""Percentiles for the benchmarks (nearest-rank on the sorted samples)."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
