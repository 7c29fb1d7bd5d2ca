"""Lifecycle of a registry's models: every channel and yank change, read from registry.yaml's
git history (`mx registry history`, and the site's lifecycle sections and audit page).

One `git log` of registry.yaml, `git cat-file` for the file at each commit and at its first
parent, and each distinct revision parsed once: the cost grows with the commits
walked, not with the number of models. Everything read here (names, emails, subjects,
reasons) is untrusted text, returned as git has it; callers that publish it bound it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mx import yamlio
from mx.fsutil import atomic_write_bytes
from mx.yamlbounds import MAX_YAML_BYTES

_SECTIONS = ("channels", "yanked")


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
    model: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Log:
    """What the walk found. `git`: registry.yaml is in a git work tree; `problem`: why there is
    no history, when there is none; `complete`: every commit touching the file was walked
    (none beyond `limit`)."""

    git: bool
    events: list[Event] = field(default_factory=list)  # oldest first
    commits: int = 0  # commits of registry.yaml walked
    limit: int | None = None
    complete: bool = True
    problem: str | None = None
    head: str | None = None  # the newest commit walked


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True)


def _toplevel(here: Path) -> Path | None:
    try:
        proc = _git(here, "rev-parse", "--show-toplevel")
    except (FileNotFoundError, NotADirectoryError):  # no git, or no such folder
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return Path(proc.stdout.decode("utf-8", "replace").strip())


_Sections = dict[str, dict[str, dict[str, str]]]  # section -> model -> {key: value}
_CHUNK = 64  # blobs a `git cat-file --batch` reads at a time: memory stays bounded


def _revisions(root: Path, revs: list[str]) -> dict[str, _Sections]:
    """`rev:path` -> what that revision of the file says (empty: no such file there). Each
    distinct blob is read and parsed once (a commit's file is usually the next commit's
    parent's), in a few git processes."""
    wanted = list(dict.fromkeys(revs))
    if not wanted:
        return {}
    check = _git(root, "cat-file", "--batch-check",
                 stdin="".join(f"{r}\n" for r in wanted).encode())
    oids: dict[str, str] = {}
    for rev, line in zip(wanted, check.stdout.decode("ascii", "replace").split("\n"),
                         strict=False):
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob":
            oids[rev] = fields[0]
    distinct = list(dict.fromkeys(oids.values()))
    parsed: dict[str, _Sections] = {}
    for start in range(0, len(distinct), _CHUNK):
        chunk = distinct[start:start + _CHUNK]
        out = _git(root, "cat-file", "--batch",
                   stdin="".join(f"{oid}\n" for oid in chunk).encode()).stdout
        pos = 0
        for oid in chunk:
            end = out.find(b"\n", pos)
            if end < 0:
                break
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[2].isdigit():
                size = int(header[2])
                parsed[oid] = _sections(out[pos:pos + size])
                pos += size + 1  # the content, then a newline
    empty = _sections(None)
    return {rev: parsed.get(oids.get(rev, ""), empty) for rev in wanted}


def _load(text: str) -> Any:
    """libyaml (C, from PyYAML when installed) reads a revision in a twentieth of the time
    the bounded ruamel reader takes, and a walk reads one revision a commit; a revision with
    anchors or aliases ('&', '*'), or too big, goes through the reader that caps them."""
    if "&" not in text and "*" not in text and len(text) <= MAX_YAML_BYTES:
        try:
            import yaml
        except ImportError:
            pass
        else:
            return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return yamlio.to_plain(yamlio.load_text(text, "registry.yaml"))


def _sections(text: bytes | None) -> _Sections:
    """section -> model -> {key: value} of one revision; a broken revision reads as empty
    (the next one that parses shows the change)."""
    empty: _Sections = {s: {} for s in _SECTIONS}
    if not text:
        return empty
    try:
        doc = _load(text.decode("utf-8", "replace"))
    except Exception:
        return empty
    if not isinstance(doc, dict):
        return empty
    for section in _SECTIONS:
        value = doc.get(section)
        if isinstance(value, dict):
            empty[section] = {str(m): {str(k): str(v) for k, v in entries.items()}
                              for m, entries in value.items() if isinstance(entries, dict)}
    return empty


def walk(registry_file: Path, limit: int | None = None, cache: Path | None = None) -> Log:
    """The channel and yank changes of every model in the last `limit` commits that touched
    registry_file (all of them when None). Never raises for a missing repository or history:
    the Log says what is missing. `cache`: a JSON file keeping each commit's changes (a
    commit never changes), so a rebuild reads only the commits made since."""
    path = registry_file.resolve()
    root = _toplevel(path.parent)
    if root is None:
        return Log(git=False, limit=limit, problem="registry.yaml is not in a git repository")
    try:
        rel = path.relative_to(root.resolve()).as_posix()
    except ValueError:  # git answered with a work tree that does not hold the file
        return Log(git=False, limit=limit, problem="registry.yaml is not in a git repository")
    count = [] if limit is None else [f"--max-count={limit + 1}"]
    log = _git(root, "log", *count, "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%s", "--", rel)
    # "\n" only: a subject may hold other characters str.splitlines() splits at.
    lines = [ln for ln in log.stdout.decode("utf-8", "replace").split("\n") if ln]
    if log.returncode != 0 or not lines:
        return Log(git=True, limit=limit, problem="registry.yaml has no commits yet")
    complete = limit is None or len(lines) <= limit
    commits = [ln.split("\0", 5) for ln in (lines if limit is None else lines[:limit])]
    commits = [c for c in commits if len(c) == 6]
    commits.reverse()  # oldest first
    known = _load_cache(cache, rel)
    todo = [c for c in commits if c[0] not in known]
    revisions = _revisions(root, [f"{sha}:{rel}" for sha, *_ in todo]
                           + [f"{parents.split()[0]}:{rel}" for _, parents, *_ in todo if parents])
    empty = _sections(None)

    def read(rev: str | None) -> _Sections:
        return revisions.get(rev, empty) if rev else empty

    events: list[Event] = []
    changes: dict[str, list[list[str | None]]] = {}
    for sha, parents, author, email, date, subject in commits:
        if sha in known:
            found = known[sha]
        else:
            first = parents.split()[0] if parents else None
            before, after = read(f"{first}:{rel}" if first else None), read(f"{sha}:{rel}")
            models = {m for s in _SECTIONS for side in (before, after) for m in side[s]}
            found = [row for model in sorted(models) for row in _changes(model, before, after)]
        changes[sha] = found
        events += [Event(commit=sha, author=author, email=email, date=date, subject=subject,
                         model=str(model), action=str(action), version=str(version),
                         channel=channel, previous=previous, reason=reason)
                   for model, action, version, channel, previous, reason in found]
    if cache is not None and todo:
        _save_cache(cache, rel, changes)
    return Log(git=True, events=events, commits=len(commits), limit=limit, complete=complete,
               head=commits[-1][0] if commits else None)


_Row = list[str | None]  # model, action, version, channel, previous, reason


def _changes(model: str, before: _Sections, after: _Sections) -> list[_Row]:
    rows: list[_Row] = []
    old_ch, new_ch = before["channels"].get(model, {}), after["channels"].get(model, {})
    for ch in sorted(set(old_ch) | set(new_ch)):
        if ch not in new_ch:
            rows.append([model, "unpromote", old_ch[ch], ch, None, None])
        elif old_ch.get(ch) != new_ch[ch]:
            rows.append([model, "promote", new_ch[ch], ch, old_ch.get(ch), None])
    old_y, new_y = before["yanked"].get(model, {}), after["yanked"].get(model, {})
    for v in sorted(set(old_y) | set(new_y)):
        if v not in old_y:
            rows.append([model, "yank", v, None, None, new_y[v]])
        elif v not in new_y:
            rows.append([model, "unyank", v, None, None, old_y[v]])
    return rows


_CACHE_FORMAT = 1


def _load_cache(cache: Path | None, rel: str) -> dict[str, list[_Row]]:
    if cache is None:
        return {}
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != _CACHE_FORMAT or doc.get("path") != rel \
            or not isinstance(doc.get("commits"), dict):
        return {}
    good: dict[str, list[_Row]] = {}
    for sha, rows in doc["commits"].items():
        if isinstance(rows, list) and all(
                isinstance(r, list) and len(r) == 6 and all(x is None or isinstance(x, str)
                                                            for x in r) for r in rows):
            good[sha] = rows
    return good


def _save_cache(cache: Path, rel: str, changes: dict[str, list[_Row]]) -> None:
    """The commits of this walk only: the file stays as big as the bound."""
    with contextlib.suppress(OSError):  # a cache not written costs time, never the build
        atomic_write_bytes(cache, json.dumps({"format": _CACHE_FORMAT, "path": rel,
                                              "commits": changes}, sort_keys=True).encode())
