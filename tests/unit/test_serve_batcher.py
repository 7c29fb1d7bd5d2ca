"""Where the batcher runs a model: quick runs on the event loop, slow ones in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mx.serve.batcher import INLINE_SECONDS, MEASURED_RUNS, Batcher, BatchPolicy


@dataclass
class FakeModel:
    seconds: float  # each run's duration
    name: str = "acme/fake"
    version: str = "1.0.0"
    batchable: bool = True
    threads: list[str] = field(default_factory=list)  # where each run took place

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        if self.seconds:
            time.sleep(self.seconds)
        return {"y": feeds["x"] * 2}


@pytest.mark.parametrize("max_batch", [1, 32])  # unbatched and batched paths
def test_quick_runs_stay_on_the_loop_and_slow_ones_go_to_threads(max_batch: int) -> None:
    quick, slow = FakeModel(0.0), FakeModel(INLINE_SECONDS * 5)

    async def requests(model: FakeModel, n: int, width: int = 2) -> None:
        with ThreadPoolExecutor(2, thread_name_prefix="ort") as pool:
            batcher = Batcher(model, BatchPolicy(max_batch, 0.0005), pool)  # type: ignore[arg-type]
            if width > 2:  # measured on small inputs first
                batcher.runs, batcher.byte_seconds = MEASURED_RUNS + 1, 1e-7
            for i in range(n):
                out = await batcher.infer({"x": np.full((1, width), i, np.float32)})
                assert out["y"][0, :2].tolist() == [2 * i, 2 * i]

    def run(coro: Coroutine[Any, Any, None]) -> None:
        # its own thread: a fresh event loop whatever the test process's main thread holds
        with ThreadPoolExecutor(1, thread_name_prefix="loop") as pool:
            pool.submit(asyncio.run, coro).result(timeout=60)

    run(requests(quick, MEASURED_RUNS + 5))
    assert all(t.startswith("ort") for t in quick.threads[:MEASURED_RUNS])
    on_loop = quick.threads[MEASURED_RUNS + 1:]
    assert len(on_loop) == 4 and all(t.startswith("loop") for t in on_loop)
    # the same model on 100,000 times the bytes is expected to take that much longer
    run(requests(quick, MEASURED_RUNS + 5, width=200_000))
    assert all(t.startswith("ort") for t in quick.threads[-MEASURED_RUNS - 5:])
    run(requests(slow, MEASURED_RUNS + 5))
    assert all(t.startswith("ort") for t in slow.threads)
