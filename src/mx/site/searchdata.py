"""The site's search data: an inverted index split into small files, so the first result
of a query needs a few kilobytes, not the whole listing.

search/meta.json      {"v": 1, "shards": [key, ...], "docs": per-file, "count": models}
search/t/<key>.json   {term: [posting, ...]} for the terms routed to that shard
search/d/<n>.json     [[name, latest, summary], ...] for model ids n*per-file ...

Models get ids in name order. A posting is id*2, plus 1 when the term is in the model's
name (name hits rank first). Terms are the runs of [a-z0-9] of name, summary, task, tags
and card keywords, two characters or more; a name word also gives its suffixes, so
"bert" finds "distilbert". A query word matches the terms it begins.

Shards are the leaves of a prefix tree over terms (end of term written '_'), split until
each holds at most SHARD_POSTINGS postings: a query word's terms lie in the one leaf whose
key begins the word, or else in the leaves whose keys begin with the word."""

from __future__ import annotations

import json
import marshal
import re
import sys
from bisect import insort
from collections import defaultdict
from pathlib import Path
from typing import Any

from mx.fsutil import atomic_write_bytes

FORMAT = 1
STATE_FORMAT = 1  # the builder's own state beside the site (search-state.bin)
SHARD_POSTINGS = 1500
DOCS_PER_FILE = 100
MAX_KEY = 8
_TERM = re.compile(r"[a-z0-9]{2,40}")


def terms(text: str) -> list[str]:
    return _TERM.findall(text.lower())


def _name_terms(name: str) -> set[str]:
    out: set[str] = set()
    for t in terms(name):
        out.update(t[i:] for i in range(len(t) - 2))  # suffixes of 3 or more characters
        out.add(t)
    return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _codes(i: int, e: dict[str, Any]) -> dict[str, int]:
    """The postings entry `e` (model id `i`) adds, by term."""
    in_name = _name_terms(e["name"])
    other = " ".join([e.get("summary") or "", e.get("task") or "",
                      " ".join(e.get("tags") or []), e.get("keywords") or ""])
    codes = dict.fromkeys(in_name, i * 2 + 1)
    codes.update(dict.fromkeys(set(terms(other)).difference(in_name), i * 2))
    return codes


def _postings(ordered: list[dict[str, Any]]) -> dict[str, list[int]]:
    postings: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(ordered):
        # Ids only grow, so each posting list comes out sorted without sorting it.
        for term, code in _codes(i, e).items():
            postings[term].append(code)
    return dict(postings)


def _doc_file(ordered: list[dict[str, Any]], n: int) -> bytes:
    return _dumps([[e["name"], e["latest"], e.get("summary") or ""]
                   for e in ordered[n * DOCS_PER_FILE:(n + 1) * DOCS_PER_FILE]])


def _files(ordered: list[dict[str, Any]], postings: dict[str, list[int]],
           leaves: list[tuple[str, list[str]]], shards: set[str] | None,
           docs: set[int] | None) -> dict[str, bytes]:
    """The files for these postings and leaves: every one, or (with `shards`, `docs`) only
    those leaves and doc files, and meta.json."""
    files: dict[str, bytes] = {}
    for key, members in leaves:
        if shards is None or key in shards:
            files[f"t/{key}.json"] = _dumps({t: postings[t] for t in members})
    for n in range(0, (len(ordered) + DOCS_PER_FILE - 1) // DOCS_PER_FILE):
        if docs is None or n in docs:
            files[f"d/{n}.json"] = _doc_file(ordered, n)
    files["meta.json"] = _dumps({"v": FORMAT, "shards": [k for k, _ in leaves],
                                 "docs": DOCS_PER_FILE, "count": len(ordered)})
    return files


def build(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    """Files (path under search/ -> bytes) for the search listing's entries."""
    ordered = sorted(entries, key=lambda e: e["name"])
    postings = _postings(ordered)
    counts = {t: len(p) for t, p in postings.items()}
    return _files(ordered, postings, _split(sorted(postings), counts, ""), None, None)


def update(entries: list[dict[str, Any]], state_file: Path) -> tuple[dict[str, bytes], list[str]]:
    """What `build` gives, computed from the last build's postings (kept in `state_file`)
    when the set of models is the same: only the entries that changed are read again, and
    only the files they change are returned. Returns (files to write, every file)."""
    ordered = sorted(entries, key=lambda e: e["name"])
    state = _load(state_file, [e["name"] for e in ordered])
    if state is None:
        postings = _postings(ordered)
        counts = {t: len(p) for t, p in postings.items()}
        leaves = _split(sorted(postings), counts, "")
        files = _files(ordered, postings, leaves, None, None)
    else:
        old_entries, postings, old_leaves = state
        touched: set[str] = set()
        docs: set[int] = set()
        for i, (old, new) in enumerate(zip(old_entries, ordered, strict=True)):
            if old == new:
                continue
            before, after = _codes(i, old), _codes(i, new)
            for term, code in before.items():
                if after.get(term) != code:
                    postings[term].remove(code)
                    if not postings[term]:
                        del postings[term]
                    touched.add(term)
            for term, code in after.items():
                if before.get(term) != code:
                    insort(postings.setdefault(term, []), code)
                    touched.add(term)
            docs.add(i // DOCS_PER_FILE)
        counts = {t: len(p) for t, p in postings.items()}
        leaves = _split(sorted(postings), counts, "")
        old_set = {(k, tuple(m)) for k, m in old_leaves}
        shards = {k for k, m in leaves
                  if (k, tuple(m)) not in old_set or not touched.isdisjoint(m)}
        files = _files(ordered, postings, leaves, shards, docs)
    _save(state_file, ordered, postings, leaves)
    every = [f"t/{k}.json" for k, _ in leaves] + [
        f"d/{n}.json" for n in range((len(ordered) + DOCS_PER_FILE - 1) // DOCS_PER_FILE)]
    return files, [*every, "meta.json"]


def _load(path: Path, names: list[str]) -> tuple[list[dict[str, Any]], dict[str, list[int]],
                                                   list[tuple[str, list[str]]]] | None:
    try:
        state = marshal.loads(path.read_bytes())
        if (not isinstance(state, dict) or state.get("format") != STATE_FORMAT
                or state.get("v") != FORMAT or state.get("shard_postings") != SHARD_POSTINGS
                or state.get("python") != sys.version
                or [e["name"] for e in state["entries"]] != names):
            return None
        return state["entries"], state["postings"], [(k, m) for k, m in state["leaves"]]
    except (FileNotFoundError, ValueError, EOFError, KeyError, TypeError):
        return None


def _save(path: Path, ordered: list[dict[str, Any]], postings: dict[str, list[int]],
          leaves: list[tuple[str, list[str]]]) -> None:
    # marshal, not JSON: the state is a few MB of ints and strings read and written at
    # every build, and marshal is several times faster. It is the builder's own file in
    # its cache folder (nothing from outside), and anything unreadable means a full build.
    atomic_write_bytes(path, marshal.dumps({
        "format": STATE_FORMAT, "v": FORMAT, "shard_postings": SHARD_POSTINGS,
        "python": sys.version, "entries": ordered, "postings": postings, "leaves": leaves}))


def _split(members: list[str], counts: dict[str, int],
           prefix: str) -> list[tuple[str, list[str]]]:
    """Leaves (key, terms) under `prefix`, in key order; `members` all begin with it."""
    size = sum(counts[t] for t in members)
    if prefix and (size <= SHARD_POSTINGS or len(prefix) >= MAX_KEY):
        return [(prefix, members)]
    children: dict[str, list[str]] = defaultdict(list)
    for t in members:
        children[prefix + (t[len(prefix)] if len(t) > len(prefix) else "_")].append(t)
    out: list[tuple[str, list[str]]] = []
    for key in sorted(children):
        if key.endswith("_"):
            out.append((key, children[key]))  # the term equal to the prefix: a leaf
        else:
            out.extend(_split(children[key], counts, key))
    return out
