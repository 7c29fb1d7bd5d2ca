"""The governance view: each model page's lifecycle (channels, promotions, yanks with who, when
and which commit) and the registry's audit page and feeds, from registry.yaml's git history."""

from __future__ import annotations

import calendar
import html
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mx.lifecycle import walk
from tests.support.examples import git

ALICE = {"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.org",
         "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.org"}
BOB = {"GIT_AUTHOR_NAME": "Bob", "GIT_AUTHOR_EMAIL": "bob@example.org",
       "GIT_COMMITTER_NAME": "Bob", "GIT_COMMITTER_EMAIL": "bob@example.org"}
# git reads an author up to the first '<' (the email's start), so a name carries quotes and
# ampersands but no '<'; a subject carries anything.
HOSTILE_NAME = 'Mallory" onmouseover="alert(1)" &amp; ' + "M" * 300
HOSTILE_SUBJECT = "<script>alert('x')</script>\" onmouseover=\"alert(2) " + "A" * 500


def _commit(world: Path, who: dict[str, str], message: str, day: int) -> str:
    date = f"2024-03-{day:02d}T10:00:00+00:00"
    git(world, "commit", "-qam", message,
        env={**who, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return git(world, "rev-parse", "HEAD").strip()


def _hostile_commit(world: Path, day: int) -> str:
    """A commit with an author name git's own commands would not write (a 300-character
    one), made as a raw object, as anyone pushing to the registry repo could."""
    git(world, "add", "registry.yaml")
    tree = git(world, "write-tree").strip()
    parent = git(world, "rev-parse", "HEAD").strip()
    stamp = calendar.timegm((2024, 3, day, 10, 0, 0))
    raw = (f"tree {tree}\nparent {parent}\n"
           f"author {HOSTILE_NAME} <mallory@example.org> {stamp} +0000\n"
           f"committer Mallory <mallory@example.org> {stamp} +0000\n\n{HOSTILE_SUBJECT}\n")
    path = world / "raw-commit"
    path.write_text(raw)
    sha = git(world, "hash-object", "-t", "commit", "-w", "--literally", str(path)).strip()
    git(world, "update-ref", "HEAD", sha)
    path.unlink()
    return sha


def _history(world: Path, registry_file: Path, mx: Any) -> dict[str, str]:
    """A registry repo: the initial state, then a promotion (Alice), a yank (Bob), a channel
    removed by a hostile author, and a channel added (Bob)."""
    git(world, "init", "-q", "-b", "main")
    git(world, "add", "registry.yaml")
    shas = {"initial": _commit(world, BOB, "registry", 1)}
    assert mx("registry", "promote", "acme/iris", "1.0.0", "--channel", "stable",
              "-r", registry_file).code == 0
    shas["promote"] = _commit(world, ALICE, "promote acme/iris 1.0.0 to stable", 2)
    assert mx("registry", "yank", "acme/iris", "1.1.0", "--reason", "bad labels; use 1.0.0",
              "-r", registry_file).code == 0
    shas["yank"] = _commit(world, BOB, "yank acme/iris 1.1.0", 3)
    text = registry_file.read_text()
    registry_file.write_text(text.replace(", canary: 2.0.0-rc.1", ""))
    assert "canary" not in registry_file.read_text()
    shas["hostile"] = _hostile_commit(world, 4)
    assert mx("registry", "promote", "acme/iris", "1.0.0", "--channel", "lts",
              "-r", registry_file).code == 0
    shas["lts"] = _commit(world, BOB, "acme/iris: an lts channel", 5)
    return shas


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in root.rglob("*") if p.is_file()}


def _check_audit_shape(doc: Any) -> None:
    """The shape docs/formats.md gives audit.json."""
    assert set(doc) == {"mx_audit", "registry", "git", "note", "head", "commits",
                        "commit_limit", "complete", "event_limit", "truncated", "events"}
    assert doc["mx_audit"] == 1 and isinstance(doc["registry"], str)
    assert isinstance(doc["git"], bool) and isinstance(doc["note"], str)
    assert doc["head"] is None or re.fullmatch("[0-9a-f]{40}", doc["head"])
    assert isinstance(doc["commits"], int) and isinstance(doc["complete"], bool)
    assert doc["commit_limit"] is None or isinstance(doc["commit_limit"], int)
    assert isinstance(doc["truncated"], bool) and len(doc["events"]) <= doc["event_limit"]
    for e in doc["events"]:
        assert set(e) == {"model", "action", "version", "channel", "previous", "reason",
                          "commit", "author", "date", "subject"}
        assert e["action"] in {"promote", "unpromote", "yank", "unyank"}
        assert re.fullmatch("[0-9a-f]{40}", e["commit"])
        for key in ("model", "version", "author", "date", "subject"):
            assert isinstance(e[key], str)
        for key in ("channel", "previous", "reason"):
            assert e[key] is None or isinstance(e[key], str)
        assert (e["channel"] is None) == (e["action"] in {"yank", "unyank"})


def test_lifecycle_pages_and_audit(world: Path, registry_file: Path, mx: Any) -> None:
    shas = _history(world, registry_file, mx)
    out = world / "out"
    res = mx("index", "build", registry_file, "-o", out, "--json")
    assert res.code == 0, res.err

    page = (out / "models/acme/iris.html").read_text()
    section = page[page.index('id="mx-lifecycle"'):page.index('id="mx-variants"')]
    assert "<code>lts</code> &rarr; 1.0.0" in section and "<code>stable</code> &rarr; 1.0.0" \
        in section
    assert "From registry.yaml&#39;s git history." in section
    rows = re.findall(r'<tr class="mx-change[^"]*">(.*?)</tr>', section)
    # newest first: lts (Bob), canary removed (hostile), yank (Bob), promote (Alice), initial
    expected = [("lts", "2024-03-05", "promoted 1.0.0 to lts", "Bob"),
                ("hostile", "2024-03-04", "removed channel canary (was 2.0.0-rc.1)", None),
                ("yank", "2024-03-03", "yanked 1.1.0: bad labels; use 1.0.0", "Bob"),
                ("promote", "2024-03-02", "promoted 1.0.0 to stable (was 1.1.0)", "Alice")]
    for row, (key, day, what, who) in zip(rows, expected, strict=False):
        assert f">{day}</time>" in row and f"<td>{what}</td>" in row, row
        assert f"<code title=\"{shas[key]}: " in row and f">{shas[key][:12]}</code>" in row
        if who:
            assert f"<td>{who}</td>" in row
    initial = rows[len(expected):]
    assert [re.search(r"<td>(promoted|yanked)[^<]*</td>", r)[0] for r in initial] == [  # type: ignore[index]
        "<td>promoted 2.0.0-rc.1 to canary</td>", "<td>promoted 1.1.0 to stable</td>",
        "<td>yanked 1.2.0: wrong weights; use 1.1.0</td>"]

    # Hostile text is escaped and cut; emails are nowhere on the site.
    hostile = rows[1]
    assert "<script>alert" not in page and 'onmouseover="' not in page
    author = re.search(r"<td>(Mallory[^<]*)</td>", hostile)[1]  # type: ignore[index]
    assert author.startswith("Mallory&#34; onmouseover=&#34;alert(1)&#34; &amp;amp; MMM")
    assert author.endswith("…") and len(html.unescape(author)) == 80
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34; onmouseover=&#34;alert(2) AAA" \
        in hostile
    assert "A" * 300 not in page
    site_text = "".join(p.read_text() for p in out.rglob("*")
                        if p.suffix in {".html", ".json", ".xml"} and p.is_file())
    assert "example.org" not in site_text

    # acme/resnet has no lifecycle changes: its section says so, and lists no rows.
    resnet = (out / "models/acme/resnet.html").read_text()
    assert 'id="mx-lifecycle"' in resnet and "Channels: none." in resnet
    assert 'class="mx-change' not in resnet

    # The audit page and audit.json: every change, newest first.
    audit = (out / "audit.html").read_text()
    assert "5 commits read" in audit and f"<code>{shas['lts'][:12]}</code>" in audit
    assert audit.index("promoted 1.0.0 to lts") < audit.index("removed channel canary") \
        < audit.index("yanked 1.1.0") < audit.index("promoted 1.0.0 to stable")
    assert '<a href="models/acme/iris.html">acme/iris</a>' in audit
    assert "<script>alert" not in audit and 'onmouseover="' not in audit
    doc = json.loads((out / "audit.json").read_text())
    _check_audit_shape(doc)
    assert (doc["git"], doc["head"], doc["commits"], doc["complete"]) == \
        (True, shas["lts"], 5, True)
    assert [(e["commit"], e["action"]) for e in doc["events"][:4]] == [
        (shas["lts"], "promote"), (shas["hostile"], "unpromote"), (shas["yank"], "yank"),
        (shas["promote"], "promote")]
    assert doc["events"][1]["author"].startswith(HOSTILE_NAME[:40])
    assert len(doc["events"][1]["author"]) == 80 and len(doc["events"][1]["subject"]) == 200
    assert doc["events"][3]["previous"] == "1.1.0" and doc["events"][3]["author"] == "Alice"
    assert doc["events"][2]["reason"] == "bad labels; use 1.0.0"
    assert [e["date"][:10] for e in doc["events"]] == sorted(
        (e["date"][:10] for e in doc["events"]), reverse=True)

    # The Atom feed: well-formed, newest first, stable ids, links to model pages.
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.fromstring((out / "audit.xml").read_bytes())
    entries = feed.findall("a:entry", ns)
    assert len(entries) == len(doc["events"])
    assert entries[0].findtext("a:title", namespaces=ns) == "acme/iris: promoted 1.0.0 to lts"
    assert entries[1].findtext("a:author/a:name", namespaces=ns) == doc["events"][1]["author"]
    assert entries[0].find("a:link", ns).get("href") == \
        "http://127.0.0.1/models/acme/iris.html"  # type: ignore[union-attr]
    assert len({e.findtext("a:id", namespaces=ns) for e in entries}) == len(entries)

    # One more promotion, of acme/resnet: only its page is rendered again, plus the audit.
    res = mx("index", "build", registry_file, "-o", out, "--json")
    assert json.loads(res.out)["pages_rendered"] == 0
    before = _mtimes(out)
    time.sleep(0.01)
    assert mx("registry", "promote", "acme/resnet", "0.1.0", "--channel", "stable",
              "-r", registry_file).code == 0
    new = _commit(world, ALICE, "promote acme/resnet 0.1.0", 6)
    res = mx("index", "build", registry_file, "-o", out, "--json")
    assert json.loads(res.out)["pages_rendered"] == 1
    after = _mtimes(out)
    changed = {f for f in after if after[f] != before.get(f)}
    site = {f for f in changed if not f.startswith(("index/", "tuf/"))}
    assert site == {"models/acme/resnet.html", "audit.html", "audit.json", "audit.xml"}, site
    resnet = (out / "models/acme/resnet.html").read_text()
    assert "promoted 0.1.0 to stable" in resnet and f">{new[:12]}</code>" in resnet
    assert json.loads((out / "audit.json").read_text())["events"][0]["commit"] == new


def test_history_bound_and_cache(world: Path, registry_file: Path, mx: Any) -> None:
    shas = _history(world, registry_file, mx)
    cache = world / "lifecycle.json"
    log = walk(registry_file, 2, cache)
    assert (log.commits, log.complete, log.head) == (2, False, shas["lts"])
    assert [e.commit for e in log.events] == [shas["hostile"], shas["lts"]]
    assert set(json.loads(cache.read_text())["commits"]) == {shas["hostile"], shas["lts"]}
    assert walk(registry_file, 2, cache).events == log.events  # from the cache
    full = walk(registry_file, 500, cache)
    assert full.complete and full.commits == 5 and full.events[-len(log.events):] == log.events
    registry_file.write_text(registry_file.read_text().replace("registry: 1\n",
                                                              "registry: 1\nhistory_commits: 2\n"))
    _commit(world, BOB, "history_commits: 2", 6)  # touches no channel or yank
    out = world / "out"
    assert mx("index", "build", registry_file, "-o", out).code == 0
    page = (out / "models/acme/iris.html").read_text()
    assert "From the newest 2 commits of registry.yaml&#39;s git history; older changes are " \
        "not shown." in page
    assert "promoted 1.0.0 to lts" in page and "promoted 1.0.0 to stable" not in page
    doc = json.loads((out / "audit.json").read_text())
    assert (doc["commits"], doc["commit_limit"], doc["complete"]) == (2, 2, False)


def test_no_git_history(world: Path, registry_file: Path, mx: Any) -> None:
    # The shared world's registry is not in a git repository: its build says so.
    site = world / "site"
    page = (site / "models/acme/iris.html").read_text()
    assert "No history: registry.yaml is not in a git repository." in page
    assert "<code>stable</code> &rarr; 1.1.0" in page  # the channels are still shown
    doc = json.loads((site / "audit.json").read_text())
    _check_audit_shape(doc)
    assert (doc["git"], doc["events"], doc["head"]) == (False, [], None)
    assert "No history: registry.yaml is not in a git repository." in \
        (site / "audit.html").read_text()
    ET.fromstring((site / "audit.xml").read_bytes())
    # A repository with no commit yet.
    git(world, "init", "-q", "-b", "main")
    out = world / "out"
    assert mx("index", "build", registry_file, "-o", out).code == 0
    assert "No history: registry.yaml has no commits yet." in \
        (out / "models/acme/iris.html").read_text()
    assert json.loads((out / "audit.json").read_text())["git"] is False
