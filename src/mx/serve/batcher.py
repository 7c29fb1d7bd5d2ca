"""Dynamic batching: requests that arrive within `max_delay` are stacked along the batch
axis into one onnxruntime run (up to `max_batch` rows), then split back per request.

One worker task per model version; onnxruntime runs in a thread (it releases the GIL),
so the event loop keeps accepting requests while a batch computes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mx.infer.model import LoadedModel

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int = 32  # rows per run; 1 turns batching off
    max_delay: float = 0.002  # seconds the first request of a batch may wait for company


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    key: tuple[tuple[str, tuple[int, ...], str], ...]  # what must match to stack
    future: asyncio.Future[dict[str, np.ndarray]] = field(repr=False)


class Batcher:
    def __init__(self, model: LoadedModel, policy: BatchPolicy, executor: ThreadPoolExecutor,
                 on_batch: Callable[[int], None] = lambda rows: None) -> None:
        self.model, self.policy, self.executor = model, policy, executor
        self.on_batch = on_batch
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    async def infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        rows = next(iter(feeds.values())).shape[0] if feeds else 1
        if not self.model.batchable or self.policy.max_batch <= 1 \
                or rows >= self.policy.max_batch:
            self.on_batch(rows)
            return await loop.run_in_executor(self.executor, self.model.run, feeds)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        key = tuple(sorted((n, a.shape[1:], str(a.dtype)) for n, a in feeds.items()))
        pending = _Pending(feeds, rows, key, loop.create_future())
        await self.queue.put(pending)
        return await pending.future

    async def _work(self) -> None:
        held: list[_Pending] = []  # taken from the queue but not stackable with the last batch
        while True:
            first = held.pop(0) if held else await self.queue.get()
            batch, rows = [first], first.rows
            deadline = time.perf_counter() + self.policy.max_delay
            while rows < self.policy.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    nxt = (self.queue.get_nowait() if remaining <= 0
                           else await asyncio.wait_for(self.queue.get(), remaining))
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if nxt.key != first.key or rows + nxt.rows > self.policy.max_batch:
                    held.append(nxt)
                    if rows + nxt.rows > self.policy.max_batch:
                        break
                    continue
                batch.append(nxt)
                rows += nxt.rows
            await self._run(batch, rows)

    async def _run(self, batch: list[_Pending], rows: int) -> None:
        loop = asyncio.get_running_loop()
        self.on_batch(rows)
        names = list(batch[0].feeds)
        stacked = {n: np.concatenate([p.feeds[n] for p in batch]) if len(batch) > 1
                   else batch[0].feeds[n] for n in names}
        try:
            outputs = await loop.run_in_executor(self.executor, self.model.run, stacked)
        except Exception as exc:  # the run failed for all of them: each request hears why
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in batch:
            part = {n: a[start:start + p.rows] for n, a in outputs.items()}
            start += p.rows
            if not p.future.done():
                p.future.set_result(part)
