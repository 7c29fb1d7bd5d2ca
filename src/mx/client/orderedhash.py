"""sha256 of a file whose bytes land out of order (ranged parts), hashed as they land.

Pieces are taken in order, so what lands ahead of the contiguous prefix is at most a few
pieces: those chunks stay in memory up to a budget and are hashed from there when the
prefix reaches them. Past the budget (a stalled piece), chunks are left on disk and read
back (`reread` counts those bytes), as are the pieces an earlier, killed attempt left.
"""

from __future__ import annotations

import hashlib
import os
import threading

from mx.errors import IntegrityError
from mx.fsutil import CHUNK


class OrderedHasher:
    """sha256 of a file whose bytes land out of order: `landed(offset, chunk)` after each
    chunk is written; a thread hashes the contiguous prefix as it grows."""

    def __init__(self, fd: int, budget: int) -> None:
        self._fd = fd
        self._budget = budget
        self._h = hashlib.sha256()
        self.frontier = 0
        self.reread = 0  # bytes hashed by reading the file back
        # offset -> bytes, or the length of bytes left on disk
        self._ready: dict[int, bytes | memoryview | int] = {}
        self._held = 0
        self._closed = False
        self._busy = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_disk(self, start: int, end: int) -> None:
        """Bytes an earlier attempt wrote: read back when the prefix reaches them."""
        with self._cond:
            self._ready[start] = end - start
            self._cond.notify_all()

    def landed(self, offset: int, chunk: bytes | memoryview) -> None:
        with self._cond:
            if offset == self.frontier or self._held + len(chunk) <= self._budget:
                self._ready[offset] = chunk
                self._held += len(chunk)
            else:
                self._ready[offset] = len(chunk)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self.frontier not in self._ready and not self._closed:
                        self._cond.wait()
                    item = self._ready.pop(self.frontier, None)
                    if item is None:
                        return
                    self._busy = True
                if isinstance(item, int):
                    n = item
                    self._read_back(self.frontier, n)
                else:
                    self._h.update(item)
                    n = len(item)
                with self._cond:
                    if not isinstance(item, int):
                        self._held -= n
                    self.frontier += n
                    self._busy = False
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _read_back(self, offset: int, n: int) -> None:
        end = offset + n
        while offset < end:
            data = os.pread(self._fd, min(CHUNK, end - offset), offset)
            if not data:
                raise OSError(f"the part file ends at {offset}, before {end}")
            self._h.update(data)
            offset += len(data)
            self.reread += len(data)

    def digest_at(self, size: int) -> str:
        """The hex digest once the prefix reaches `size`; call when every byte has landed."""
        with self._cond:
            while self.frontier < size and self._error is None:
                if not self._busy and self.frontier not in self._ready:
                    raise IntegrityError(f"no bytes landed at offset {self.frontier} of {size}")
                self._cond.wait()
            if self._error is not None:
                raise self._error
        return self._h.hexdigest()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
