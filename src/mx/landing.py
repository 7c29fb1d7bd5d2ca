"""A response body straight into a file at an offset, with as few copies as the host allows.

On two cores a download is CPU-bound: curl spends a core receiving and writing, and mx
must also hash. Reading into user buffers and writing them out costs two copies per byte,
and buffers that a hasher thread holds until it gets to them fall out of the CPU's cache
before they are written (measured here: 12-15 s for 4 GiB against curl's 7). So bytes go
to the file first, and the hasher reads them back from the page cache, in order
(`mx.client.orderedhash`): the buffers stay few and hot.

On Linux, a plain-TCP body of known length goes socket -> pipe -> file with splice(2):
the kernel moves the socket's pages into a pipe and copies them once into the page cache,
and no byte passes through Python (4 GiB from 127.0.0.1 with sha256: about 5.5 s, against
8 s for reading into reused buffers). TLS bodies, chunked ones, those of unknown length
and other systems take `copy_into`: readinto one reused buffer, pwrite.

A body never writes past `want` bytes: the one byte past that shows a lying host is read
(or seen in Content-Length) but not written, and reported as `overran`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Protocol

SPLICE = hasattr(os, "splice")
PIPE_SIZE = 1 << 20  # Linux's default pipe-max-size: one splice moves up to this much
# The copy path's one buffer: small enough to stay in the CPU's cache between the read and
# the write (256 KiB wrote 4 GiB in about half the time 1 MiB took, measured here).
BUFFER = 256 << 10

# A transfer is stalled when fewer than this many bytes a second arrive, averaged over a
# read_timeout: the socket's timeout alone fires only on silence, and a host trickling one
# byte a second (a broken middlebox, or a hostile host) would hold a download for ever.
MIN_RATE = 1024


class Landing(Protocol):
    """A body that writes itself into a file: `into_file` yields each stretch's length
    after it is written at `offset` onwards; `overran` tells, after it, whether the body
    held more than `want` bytes."""

    overran: bool

    def into_file(self, fd: int, offset: int, want: int) -> Iterator[int]: ...


class Pace:
    """Fails a read with TimeoutError once a `window` of seconds brought fewer than
    MIN_RATE bytes a second."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._since = time.monotonic()
        self._seen = 0

    def count(self, n: int) -> None:
        self._seen += n
        now = time.monotonic()
        if now - self._since >= self._window:
            if self._seen < MIN_RATE * self._window:
                raise TimeoutError(f"the host sends too slowly ({self._seen} bytes in "
                                   f"{now - self._since:.0f} s)")
            self._since, self._seen = now, 0


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def copy_into(readinto: Callable[[memoryview], int], fd: int, offset: int, want: int,
              buffer: int = BUFFER) -> Generator[int, None, bool]:
    """Read with `readinto` into one reused buffer and pwrite at `offset` onwards, at most
    `want` bytes, yielding each stretch's length; returns whether a byte past `want`
    came."""
    buf = memoryview(bytearray(max(1, min(buffer, want + 1))))
    got = 0
    while True:
        n = readinto(buf[:min(len(buf), want + 1 - got)])
        if not n:
            return False
        over = got + n > want
        n = min(n, want - got)
        if n:
            pwrite_all(fd, buf[:n], offset + got)
            got += n
            yield n
        if over:
            return True


def splice_into(sock: socket.socket, fd: int, offset: int, want: int, timeout: float,
                pace: Pace) -> Iterator[int]:
    """Up to `want` bytes from `sock` into `fd` at `offset` onwards through a pipe; stops
    at the socket's end of file. The socket's own timeout (it is non-blocking) does not
    apply to splice, so silence is timed with poll, and slowness with `pace`."""
    src = sock.fileno()
    rd, wr = os.pipe()
    try:
        # A lower pipe-max-size or a full pipe quota: the default size will do.
        with contextlib.suppress(OSError):
            fcntl.fcntl(wr, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        poller = select.poll()
        poller.register(src, select.POLLIN)
        spliced = True  # until the file refuses
        got = 0
        while got < want:
            try:
                n = os.splice(src, wr, min(want - got, PIPE_SIZE),
                              flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:  # nothing waiting: poll, then try again
                if not poller.poll(timeout * 1000):
                    raise TimeoutError(f"no bytes for {timeout:g} s") from None
                continue
            if not n:
                return
            pace.count(n)
            # A file system that takes no splice (or an O_APPEND file): this pipe's bytes
            # and the rest go through a buffer.
            spliced = spliced and _splice_out(rd, fd, n, offset + got)
            if not spliced:
                _copy_out(rd, fd, n, offset + got)
            got += n
            yield n
    finally:
        os.close(rd)
        os.close(wr)


def _splice_out(rd: int, fd: int, n: int, offset: int) -> bool:
    """The pipe's `n` bytes into the file; False when the file takes no splice (then
    nothing was moved)."""
    first = True
    while n:
        try:
            moved = os.splice(rd, fd, n, offset_dst=offset, flags=os.SPLICE_F_MOVE)
        except OSError as exc:
            if first and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                return False
            raise
        if not moved:
            raise OSError(errno.EIO, "the pipe ran dry")
        first = False
        n, offset = n - moved, offset + moved
    return True


def _copy_out(rd: int, fd: int, n: int, offset: int) -> None:
    while n:
        data = os.read(rd, n)
        if not data:
            raise OSError(errno.EIO, "the pipe ran dry")
        pwrite_all(fd, data, offset)
        n, offset = n - len(data), offset + len(data)


class ChunkBody:
    """A body given as chunks (an S3 stream), as a Landing."""

    def __init__(self, chunks: Iterable[bytes | memoryview]) -> None:
        self._chunks = chunks
        self.overran = False

    def into_file(self, fd: int, offset: int, want: int) -> Iterator[int]:
        got = 0
        for chunk in self._chunks:
            n = len(chunk)
            if got + n > want:
                self.overran = True
                n = want - got
            if n:
                pwrite_all(fd, memoryview(chunk)[:n], offset + got)
                got += n
                yield n
            if self.overran:
                return
