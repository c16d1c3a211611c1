"""Shared timing helpers for the benchmark scripts (medians, ratio tables)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(func: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``func()`` in seconds over ``repeats`` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(title: str, rows: list[tuple[str, float]], reference: str) -> None:
    """Print medians and each row's time relative to ``reference`` (ours / theirs)."""
    ref = dict(rows)[reference]
    print(f"\n{title}")
    print(f"  {'method':<44} {'median':>10} {'vs ' + reference:>22}")
    for name, seconds in rows:
        ratio = seconds / ref
        print(f"  {name:<44} {seconds * 1e3:>8.1f} ms {ratio:>20.2f}x")
