"""How the CLI talks: data on stdout (or JSON), messages on stderr, bars only on a TTY."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from mx.progress import NoProgress, Progress


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def note(message: str) -> None:
    click.echo(message, err=True)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class RichProgress:
    """The library's Progress hooks drawn as a rich bar (thread-safe)."""

    def __init__(self, unit: str = "bytes") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        counts: list[ProgressColumn] = (
            [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes"
            else [MofNCompleteColumn(), TextColumn(unit)])
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), *counts,
                             TimeRemainingColumn(), console=Console(stderr=True),
                             transient=True)

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def add(self, description: str, total: int) -> int:
        return int(self._bar.add_task(description, total=total))

    def advance(self, task: int, amount: int) -> None:
        self._bar.advance(task, amount)  # type: ignore[arg-type]

    def done(self, task: int) -> None:
        self._bar.remove_task(task)  # type: ignore[arg-type]


@contextmanager
def progress_bar(enabled: bool = True, unit: str = "bytes") -> Iterator[Progress]:
    """A bar on stderr when it is a TTY; `unit` "bytes" or a word such as "rows"."""
    if not enabled or not sys.stderr.isatty():
        yield NoProgress()
        return
    with RichProgress(unit) as bar:
        yield bar
