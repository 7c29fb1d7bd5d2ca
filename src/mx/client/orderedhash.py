"""sha256 of a file whose bytes land out of order (ranged parts), hashed as they land.

Bytes are written to the file first (`mx.landing`) and announced with `on_disk`; a thread
reads the contiguous prefix back from the page cache as it grows and hashes it. Reading
back costs one copy into a small buffer that stays in the CPU's cache for the hash, which
is cheaper than holding the received buffers until the prefix reaches them (they go cold,
and memory churns). What the hash covers is what the file holds.
"""

from __future__ import annotations

import hashlib
import os
import threading

from mx.errors import IntegrityError

READ = 1 << 20


class OrderedHasher:
    """sha256 of the file `fd`: `on_disk(start, end)` after the bytes [start, end) are
    written (in any order); a thread hashes the contiguous prefix as it grows."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._h = hashlib.sha256()
        self.frontier = 0
        self._ready: dict[int, int] = {}  # start -> end of stretches past the frontier
        self._closed = False
        self._busy = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_disk(self, start: int, end: int) -> None:
        if end > start:
            with self._cond:
                self._ready[start] = end
                if start == self.frontier:  # what the thread waits for; the rest can wait
                    self._cond.notify_all()

    def _run(self) -> None:
        buf = bytearray(READ)
        view = memoryview(buf)
        try:
            while True:
                with self._cond:
                    while self.frontier not in self._ready and not self._closed:
                        self._cond.wait()
                    end = self._ready.pop(self.frontier, None)
                    if end is None:
                        return
                    self._busy = True
                at = self.frontier
                while at < end:
                    if self._closed:  # an error or Ctrl-C: the digest is not wanted
                        return
                    n = os.preadv(self._fd, [view[:min(READ, end - at)]], at)
                    if not n:
                        raise OSError(f"the part file ends at {at}, before {end}")
                    self._h.update(view[:n])
                    at += n
                with self._cond:
                    self.frontier = end
                    self._busy = False
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._busy = False
                self._cond.notify_all()

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
