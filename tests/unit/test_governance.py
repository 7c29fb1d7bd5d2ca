"""mx.site.governance without git: how untrusted history text is bounded, and the notes."""

from __future__ import annotations

import json

from mx.lifecycle import Event, Log
from mx.site.governance import MODEL_EVENTS, Change, History, clean


def _event(i: int, model: str = "acme/iris", **kw: str) -> Event:
    base = {"commit": f"{i:040x}", "author": "Alice", "email": "alice@example.org",
            "date": f"2024-01-{i % 28 + 1:02d}T00:00:00+00:00", "action": "promote",
            "version": "1.0.0", "channel": "stable", "subject": "s", "model": model}
    return Event(**{**base, **kw})  # type: ignore[arg-type]


def test_clean_bounds_untrusted_text() -> None:
    assert clean(None, 10) is None
    assert clean("a\x00b\r\nc\u202etxt.exe\u2066  d\x85e", 100) == "a b c txt.exe d e"
    assert clean("x" * 100, 10) == "x" * 9 + "…"
    change = Change.of(_event(1, author="M" * 500, subject="<b>" * 200, reason="r" * 1000,
                              version="9" * 100))
    assert len(change.author) == 80 and len(change.subject) == 200
    assert len(change.reason or "") == 300 and len(change.version) == 64
    assert "email" not in change.to_json()


def test_history_order_notes_and_model_bound() -> None:
    events = [_event(i) for i in range(MODEL_EVENTS + 5)]
    events += [_event(100, model="acme/other", action="yank", channel=None,  # type: ignore[arg-type]
                      reason="bad")]
    log = Log(git=True, events=events, commits=len(events), limit=500, complete=True,
              head=events[-1].commit)
    history = History.of(log)
    assert [c.commit for c in history.changes[:2]] == [events[-1].commit, events[-2].commit]
    assert len(history.of_model("acme/iris")) == MODEL_EVENTS
    assert history.of_model("acme/iris")[0].commit == events[-2].commit
    assert history.of_model("acme/none") == []
    assert history.note == "From registry.yaml's git history."
    assert History.of(Log(git=True, events=events, commits=3, limit=3, complete=False)).note \
        == ("From the newest 3 commits of registry.yaml's git history; older changes are "
            "not shown.")
    assert History.of(None).available is False
    gone = History.of(Log(git=False, problem="registry.yaml is not in a git repository"))
    assert gone.note == "No history: registry.yaml is not in a git repository."
    doc = json.loads(gone.audit_json("R"))
    assert (doc["git"], doc["events"], doc["truncated"]) == (False, [], False)
    # A model's key changes with its own changes only.
    more = History.of(Log(git=True, events=[*events, _event(200, model="acme/other")],
                          commits=len(events) + 1, limit=500))
    assert more.model_key("acme/iris") == history.model_key("acme/iris")
    assert more.model_key("acme/other") != history.model_key("acme/other")
