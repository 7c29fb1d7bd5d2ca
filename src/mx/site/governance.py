"""The governance view: each model page's lifecycle section, the audit page, and the audit
feeds (`audit.json`, `audit.xml`), from the channel and yank changes mx.lifecycle reads out of
registry.yaml's git history.

What git gives (author names, subjects, yank reasons, even versions and channel names of old
revisions, which no validation saw) is untrusted: control characters become spaces, runs of
spaces one, and each field is cut to a bound (with "…"); the templates escape it. Author
emails are never published: the site shows the author's name, the date and the commit."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from mx.lifecycle import Event, Log

AUDIT_FORMAT = 1
MODEL_EVENTS = 50  # the newest changes a model page lists
AUDIT_EVENTS = 500  # ... the audit page and audit.json
FEED_EVENTS = 50  # ... the Atom feed
LIMITS = {"model": 128, "action": 16, "version": 64, "channel": 64, "previous": 64,
          "reason": 300, "commit": 40, "author": 80, "date": 40, "subject": 200}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def clean(text: str | None, limit: int) -> str | None:
    """Untrusted text as one bounded line (None stays None)."""
    if text is None:
        return None
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Change:
    """One channel or yank change, as the site publishes it (an audit.json event)."""

    model: str
    action: str  # promote | unpromote | yank | unyank
    version: str
    channel: str | None
    previous: str | None
    reason: str | None
    commit: str
    author: str
    date: str
    subject: str

    @classmethod
    def of(cls, e: Event) -> Change:
        values = {k: clean(getattr(e, k), n) for k, n in LIMITS.items()}
        return cls(**values)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def day(self) -> str:
        return self.date[:10]

    @property
    def text(self) -> str:
        """What happened, in words."""
        if self.action == "promote":
            was = f" (was {self.previous})" if self.previous else ""
            return f"promoted {self.version} to {self.channel}{was}"
        if self.action == "unpromote":
            return f"removed channel {self.channel} (was {self.version})"
        if self.action == "yank":
            return f"yanked {self.version}: {self.reason}"
        return f"unyanked {self.version}"


@dataclass
class History:
    """The history the site shows. `available`: there is a git history to read; `note`: one
    sentence on where it comes from (or why there is none), the same on every page while the
    bound and the repository stay as they are."""

    available: bool
    note: str
    changes: list[Change] = field(default_factory=list)  # newest first
    commits: int = 0
    limit: int | None = None
    complete: bool = True
    head: str | None = None
    _by_model: dict[str, list[Change]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, log: Log | None) -> History:
        if log is None:
            return cls(False, "No history: this build was given none.")
        if log.problem is not None or not log.git:
            return cls(False, f"No history: {log.problem or 'no git repository'}.",
                       limit=log.limit)
        note = ("From registry.yaml's git history." if log.complete else
                f"From the newest {log.limit} commits of registry.yaml's git history; "
                "older changes are not shown.")
        # Newest commit first; within a commit, the walk's order (by model, channels first).
        by_commit: dict[str, list[Change]] = {}
        for e in log.events:
            by_commit.setdefault(e.commit, []).append(Change.of(e))
        changes = [c for group in reversed(by_commit.values()) for c in group]
        return cls(True, note, changes, log.commits, log.limit, log.complete, log.head)

    def of_model(self, name: str) -> list[Change]:
        if self._by_model is None:  # one pass for every model page
            self._by_model = {}
            for c in self.changes:
                rows = self._by_model.setdefault(c.model, [])
                if len(rows) < MODEL_EVENTS:
                    rows.append(c)
        return self._by_model.get(name, [])

    def model_key(self, name: str) -> bytes:
        """What a model page's lifecycle section depends on: the page is rendered again
        only when this changes."""
        return json.dumps([self.note, [c.to_json() for c in self.of_model(name)]],
                          sort_keys=True).encode()

    def audit_json(self, registry: str) -> bytes:
        doc = {"mx_audit": AUDIT_FORMAT, "registry": registry, "git": self.available,
               "note": self.note, "head": self.head, "commits": self.commits,
               "commit_limit": self.limit, "complete": self.complete,
               "event_limit": AUDIT_EVENTS, "truncated": len(self.changes) > AUDIT_EVENTS,
               "events": [c.to_json() for c in self.changes[:AUDIT_EVENTS]]}
        return (json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()

    def atom(self, registry: str, site_url: str | None, names: set[str]) -> bytes:
        """An Atom feed of the newest changes. Entry ids are stable across builds: the
        commit, the model and what changed. Entries link to the pages of `names` (models
        the site has)."""
        base = site_url.rstrip("/") + "/" if site_url else None
        feed_id = f"{base}audit.html" if base else "urn:mx:audit:" + _urn(registry)
        items = self.changes[:FEED_EVENTS]
        updated = max((c.date for c in items), default="1970-01-01T00:00:00Z")
        parts = ['<?xml version="1.0" encoding="utf-8"?>\n'
                 '<feed xmlns="http://www.w3.org/2005/Atom">\n'
                 f"<id>{escape(feed_id)}</id>\n"
                 f"<title>{escape(registry)}: model lifecycle</title>\n"
                 f"<updated>{escape(updated)}</updated>\n"]
        if base:
            parts.append(f"<link rel=\"alternate\" href={quoteattr(base + 'audit.html')}/>\n"
                         f"<link rel=\"self\" href={quoteattr(base + 'audit.xml')}/>\n")
        for c in items:
            what = f"{c.model}: {c.text}"
            entry_id = f"urn:mx:audit:{c.commit}:{_urn(c.model)}:{c.action}:" \
                       f"{_urn(c.channel or c.version)}"
            link = ""
            if base and c.model in names:
                href = quoteattr(f"{base}models/{c.model}.html")
                link = f'<link rel="alternate" href={href}/>\n'
            parts.append(f"<entry>\n<id>{escape(entry_id)}</id>\n<title>{escape(what)}</title>\n"
                         f"<updated>{escape(c.date)}</updated>\n"
                         f"<author><name>{escape(c.author or '-')}</name></author>\n{link}"
                         f"<summary>{escape(f'{c.short} {c.subject}')}</summary>\n</entry>\n")
        parts.append("</feed>\n")
        return "".join(parts).encode()


def _urn(text: str) -> str:
    return quote(text, safe="._-")
