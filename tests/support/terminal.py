"""Run a command as a user's shell would: stderr on a pseudo-terminal, Ctrl-C delivered."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
from collections.abc import Sequence


def stderr_on_tty(cmd: Sequence[str], timeout: float = 60) -> tuple[int, str]:
    """(exit code, everything drawn on the terminal)."""
    primary, replica = pty.openpty()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=replica)
    os.close(replica)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # the replica side closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


def default_sigint() -> None:
    """preexec_fn for a child that must get Ctrl-C: a shell without job control (a command
    run in the background) starts its children with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
