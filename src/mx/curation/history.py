"""`mx registry history NAME`: every channel and yank change, from registry.yaml's git log
(walked by mx.lifecycle, which the site's lifecycle pages read too)."""

from __future__ import annotations

from pathlib import Path

from mx.errors import GitError
from mx.lifecycle import Event, walk

__all__ = ["Event", "history"]


def history(registry_file: Path, name: str) -> list[Event]:
    log = walk(registry_file)
    if not log.git:
        raise GitError(f"{registry_file}: not in a git repository",
                       hint="history comes from git: keep registry.yaml in a git repo")
    return [e for e in log.events if e.model == name]
