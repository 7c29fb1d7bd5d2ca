"""A download sink for transport tests: keeps what it is given in memory."""

from __future__ import annotations


class Collect:
    """A sink that keeps what it is given (reset: start over); `prefix` is what an earlier,
    killed process would have left."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.data = bytearray(prefix)

    def write(self, chunk: bytes | memoryview) -> None:
        self.data += chunk

    def reset(self) -> None:
        self.data.clear()
