"""How long work reports progress without the library printing anything.

The library calls these hooks; the CLI passes a rich progress bar when stderr is
a TTY and nothing otherwise.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def add(self, description: str, total: int) -> int: ...
    def advance(self, task: int, amount: int) -> None: ...
    def done(self, task: int) -> None: ...


class NoProgress:
    def add(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int, amount: int) -> None:
        pass

    def done(self, task: int) -> None:
        pass
