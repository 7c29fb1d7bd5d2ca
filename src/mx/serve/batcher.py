"""Dynamic batching: requests that arrive within `max_delay` are stacked along the batch
axis into one onnxruntime run (up to `max_batch` rows), then split back per request.

One worker task per model version; onnxruntime runs in a thread (it releases the GIL),
so the event loop keeps accepting requests while a batch computes. A run expected to take
under INLINE_SECONDS runs on the event loop instead: handing it to a thread and the answer
back costs two wake-ups, more than the run itself, and the loop waits no longer than one
more request's JSON would take it. The expectation is the seconds per input byte of the
model's recent runs (bytes, not rows: a longer sequence in the same rows costs more), an
overestimate for big inputs, whose fixed cost is spread thinner.

At most `max_queue` requests wait to start per model version (503 past it, at once). A
request whose deadline passes before it starts is dropped, never run late (504); once
started it finishes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mx.infer.model import LoadedModel
from mx.serve.guard import Shed

Feeds = dict[str, np.ndarray]
INLINE_SECONDS = 0.0002
MEASURED_RUNS = 3  # runs timed in a thread before any runs inline (the first are slow)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int = 32  # rows per run; 1 turns batching off
    max_delay: float = 0.002  # seconds the first request of a batch may wait for company
    max_queue: int = 256  # requests waiting to start, per model version


@dataclass
class RunTimes:
    """When a request waited and ran (time.time_ns(); 0: not reached), and the run it was
    part of; filled by the batcher for traces (`mx.serve.tracing`)."""

    queued: int = 0
    started: int = 0  # left the queue to run
    ran: int = 0  # the onnxruntime run began
    done: int = 0  # ... and ended
    batch_rows: int = 0
    batch_requests: int = 0


class _Slot:
    """A request's place in the queue: waiting, then started or dropped (exactly once)."""

    def __init__(self, batcher: Batcher, deadline: float | None,
                 times: RunTimes | None = None) -> None:
        self.batcher, self.deadline = batcher, deadline
        self.state = "waiting"
        self.times = times

    def start(self) -> bool:
        """Leave the queue to run; False (dropped) when the deadline has passed."""
        late = self.deadline is not None and time.monotonic() > self.deadline
        self._leave("dropped" if late else "started")
        if self.times is not None and self.state == "started":
            self.times.started = time.time_ns()
        return self.state == "started"

    def drop(self) -> bool:
        """Leave the queue unrun; False when it has already started."""
        self._leave("dropped")
        return self.state == "dropped"

    def _leave(self, state: str) -> None:
        with self.batcher.lock:
            if self.state == "waiting":
                self.state = state
                self.batcher.waiting -= 1


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    key: tuple[tuple[str, tuple[int, ...], str], ...]  # what must match to stack
    future: asyncio.Future[dict[str, np.ndarray]] = field(repr=False)
    slot: _Slot = field(repr=False)


def _nbytes(feeds: Feeds) -> int:
    return sum(a.nbytes for a in feeds.values())


def _late() -> Shed:
    return Shed(504, "request deadline passed while it waited in the queue; it was not run",
                "deadline_exceeded")


class Batcher:
    def __init__(self, model: LoadedModel, policy: BatchPolicy, executor: ThreadPoolExecutor,
                 on_batch: Callable[[int], None] = lambda rows: None) -> None:
        self.model, self.policy, self.executor = model, policy, executor
        self.on_batch = on_batch
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.lock = threading.Lock()  # `waiting` moves in the loop and in worker threads
        self.waiting = 0  # requests queued and not yet started (or dropped)
        self.batchable = model.batchable
        self.runs = 0  # runs timed so far
        self.byte_seconds = 0.0  # moving average of a run's seconds per input byte

    def _timed(self, feeds: Feeds, size: int) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs = self.model.run(feeds)
        per_byte = (time.perf_counter() - start) / max(size, 1)
        self.runs += 1  # from threads too: a lost update only delays the average a run
        if self.runs > 1:  # onnxruntime's first run sets up, so it is no guide
            self.byte_seconds = (per_byte if self.runs == 2
                                 else 0.8 * self.byte_seconds + 0.2 * per_byte)
        return outputs

    def _quick(self, size: int) -> bool:
        """Whether a run on `size` bytes of input should take place on the event loop."""
        return self.runs > MEASURED_RUNS and size * self.byte_seconds < INLINE_SECONDS

    async def infer(self, feeds: Feeds, deadline: float | None = None,
                    times: RunTimes | None = None) -> dict[str, np.ndarray]:
        """`deadline`: time.monotonic() by which the request must start (Shed 504 if not);
        Shed 503 at once when `max_queue` requests are already waiting. `times`, when
        given, is filled in as the request waits and runs."""
        loop = asyncio.get_running_loop()
        rows = next(iter(feeds.values())).shape[0] if feeds else 1
        with self.lock:
            if self.waiting >= self.policy.max_queue:
                raise Shed(503, f"server busy: {self.waiting} requests already wait for "
                                f"{self.model.name} {self.model.version}; retry shortly",
                           "queue_full", 1.0)
            self.waiting += 1
        slot = _Slot(self, deadline, times)
        if times is not None:
            times.queued = time.time_ns()
        if not self.batchable or self.policy.max_batch <= 1 \
                or rows >= self.policy.max_batch:
            size = _nbytes(feeds)

            def run() -> dict[str, np.ndarray]:
                if not slot.start():
                    raise _late()
                self.on_batch(rows)
                if times is None:
                    return self._timed(feeds, size)
                times.ran, times.batch_rows, times.batch_requests = time.time_ns(), rows, 1
                try:
                    return self._timed(feeds, size)
                finally:
                    times.done = time.time_ns()

            if self._quick(size):
                return run()
            return await self._await(slot, loop.run_in_executor(self.executor, run))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())
        key = tuple(sorted((n, a.shape[1:], a.dtype.str) for n, a in feeds.items()))
        pending = _Pending(feeds, rows, key, loop.create_future(), slot)
        self.queue.put_nowait(pending)
        return await self._await(slot, pending.future)

    @staticmethod
    async def _await(slot: _Slot, future: asyncio.Future[dict[str, np.ndarray]]
                     ) -> dict[str, np.ndarray]:
        if slot.deadline is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future),
                                          max(0.0, slot.deadline - time.monotonic()))
        except TimeoutError:
            if slot.drop():  # still waiting: it will be skipped when its turn comes
                future.cancel()
                raise _late() from None
            return await future  # it started in time: let it finish

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
        started = []
        for p in batch:
            if p.slot.start():
                started.append(p)
            elif not p.future.done():
                p.future.set_exception(_late())
        if not started:
            return
        batch, rows = started, sum(p.rows for p in started)
        self.on_batch(rows)
        names = list(batch[0].feeds)
        stacked = {n: np.concatenate([p.feeds[n] for p in batch]) if len(batch) > 1
                   else batch[0].feeds[n] for n in names}
        ran = time.time_ns()
        try:
            size = _nbytes(stacked)
            if self._quick(size):
                outputs = self._timed(stacked, size)
            else:
                outputs = await loop.run_in_executor(self.executor, self._timed, stacked, size)
        except Exception as exc:  # the run failed for all of them: each request hears why
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            done = time.time_ns()
            for p in batch:
                if p.slot.times is not None:
                    t = p.slot.times
                    t.ran, t.done, t.batch_rows, t.batch_requests = ran, done, rows, len(batch)
        start = 0
        for p in batch:
            part = {n: a[start:start + p.rows] for n, a in outputs.items()}
            start += p.rows
            if not p.future.done():
                p.future.set_result(part)
