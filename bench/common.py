"""Helpers shared by the benchmark scripts: timing, medians, isolated environments."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The example models and repos the benchmarks build live with the tests' fixtures.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(runs: int, fn: Callable[[], object],
              before: Callable[[], object] | None = None) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        if before is not None:
            before()
        samples.append(timed(fn))
    return statistics.median(samples), samples


def bench_env(root: Path) -> dict[str, str]:
    from tests.support.examples import sandbox_env

    return sandbox_env(root, "bench")


def mx_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mx", *args]


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")


def fmt(samples: list[float]) -> str:
    return ", ".join(f"{s:.3f}" for s in samples)
