"""Start `mx serve` in its own process and wait until it listens."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    def log_text(self) -> str:
        return self.log.read_text()


@contextmanager
def mx_serve(*args: str, log: Path, timeout: float = 60,
             open_files: int | None = None) -> Iterator[Served]:
    """`open_files`: the soft RLIMIT_NOFILE the server starts with (it may raise it)."""

    def limit() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "mx", "serve", "--port", "0", *args],
                                stdout=sink, stderr=sink, env=dict(os.environ),
                                preexec_fn=limit if open_files is not None else None)
    try:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(r"on (http://[\d.]+:\d+)/v2", log.read_text())
            if m:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mx serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Served(proc, m.group(1), log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
