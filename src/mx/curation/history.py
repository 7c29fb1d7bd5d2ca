"""`mx registry history NAME`: every channel and yank change, from registry.yaml's git log."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.errors import GitError


@dataclass(frozen=True)
class Event:
    commit: str
    author: str
    email: str
    date: str  # RFC 3339, the author date
    action: str  # promote | unpromote | yank | unyank
    version: str
    channel: str | None = None
    previous: str | None = None  # the channel's version before a promotion
    reason: str | None = None  # a yank's reason
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _entries(text: bytes | None, section: str, name: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        doc = yamlio.to_plain(yamlio.load_text(text.decode("utf-8", "replace"), "registry.yaml"))
    except Exception:  # a broken revision is skipped: the next one shows the change
        return {}
    value = ((doc or {}).get(section) or {}).get(name) if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _show(root: Path, rev: str, path: str) -> bytes | None:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def history(registry_file: Path, name: str) -> list[Event]:
    here = registry_file.resolve().parent
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True,
                         text=True)
    if top.returncode != 0:
        raise GitError(f"{registry_file}: not in a git repository",
                       hint="history comes from git: keep registry.yaml in a git repo")
    root = Path(top.stdout.strip())
    rel = registry_file.resolve().relative_to(root).as_posix()
    log = subprocess.run(["git", "log", "--reverse", "--format=%H%x00%P%x00%an%x00%ae%x00%aI"
                          "%x00%s", "--", rel], cwd=root, capture_output=True, text=True)
    events: list[Event] = []
    for line in log.stdout.splitlines():
        sha, parents, author, email, date, subject = line.split("\0")
        before = _show(root, parents.split()[0], rel) if parents else None
        after = _show(root, sha, rel)
        who = {"commit": sha, "author": author, "email": email, "date": date,
               "subject": subject}
        old_ch, new_ch = _entries(before, "channels", name), _entries(after, "channels", name)
        for ch in sorted(set(old_ch) | set(new_ch)):
            if ch not in new_ch:
                events.append(Event(**who, action="unpromote", version=old_ch[ch], channel=ch))
            elif old_ch.get(ch) != new_ch[ch]:
                events.append(Event(**who, action="promote", version=new_ch[ch], channel=ch,
                                    previous=old_ch.get(ch)))
        old_y, new_y = _entries(before, "yanked", name), _entries(after, "yanked", name)
        for v in sorted(set(old_y) | set(new_y)):
            if v not in old_y:
                events.append(Event(**who, action="yank", version=v, reason=new_y[v]))
            elif v not in new_y:
                events.append(Event(**who, action="unyank", version=v, reason=old_y[v]))
    return events
