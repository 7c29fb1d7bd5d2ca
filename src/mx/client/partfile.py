"""One artifact downloaded in one stream into tmp/<sha256>.part, hashed as it lands.

The part file is a `FileSink`: an HTTP body writes itself into it (`mx.landing`), other
sources hand chunks to `write`; either way the bytes are announced to an `OrderedHasher`,
which reads them back in order and hashes them on a thread of its own. A part an earlier
attempt left (this process or a killed one) is continued: its bytes are hashed first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mx.client.orderedhash import OrderedHasher
from mx.errors import IntegrityError
from mx.fsutil import verify_digest
from mx.landing import pwrite_all


class PartWriter:
    """A FileSink over an open part file; `size` bytes are held (the next land there)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = os.fstat(fd).st_size
        self._hasher = OrderedHasher(fd)
        self._hasher.on_disk(0, self.size)

    def fileno(self) -> int:
        return self._fd

    def write(self, chunk: bytes | memoryview) -> None:
        pwrite_all(self._fd, chunk, self.size)
        self.landed(len(chunk))

    def landed(self, n: int) -> None:
        self._hasher.on_disk(self.size, self.size + n)
        self.size += n

    def reset(self) -> None:
        """Start over (a server ignored the Range request and sends the whole file)."""
        self._hasher.close()
        os.ftruncate(self._fd, 0)
        self.size = 0
        self._hasher = OrderedHasher(self._fd)

    def hexdigest(self) -> str:
        return self._hasher.digest_at(self.size)

    def close(self) -> None:
        self._hasher.close()


def fetch_resumable(dest: Path, sha256: str, size: int, part: Path,
                    fill: Callable[[PartWriter], None], what: str) -> None:
    """Continue `part` (what an earlier attempt left), let `fill` add the rest from
    `writer.size` on, check size and sha256, rename to `dest`.

    The caller holds the lock that owns `part`. Bytes that fail the check are deleted; a
    `fill` that fails leaves `part` as it got, for the caller to keep or drop.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            writer = PartWriter(fd)
            try:
                if writer.size > size:
                    writer.reset()  # not a prefix of this object: start over
                if writer.size < size:
                    fill(writer)
                digest = writer.hexdigest()
            finally:
                writer.close()
        finally:
            os.close(fd)
        verify_digest(digest, writer.size, sha256, size, what)
    except IntegrityError:
        part.unlink(missing_ok=True)
        raise
    os.chmod(part, 0o444)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
