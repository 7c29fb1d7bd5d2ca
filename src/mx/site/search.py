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
import re
from collections import defaultdict
from typing import Any

FORMAT = 1
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


def build(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    """Files (path under search/ -> bytes) for the search listing's entries."""
    ordered = sorted(entries, key=lambda e: e["name"])
    postings: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(ordered):
        in_name = _name_terms(e["name"])
        other = " ".join([e.get("summary") or "", e.get("task") or "",
                          " ".join(e.get("tags") or []), e.get("keywords") or ""])
        # Ids only grow, so each posting list comes out sorted without sorting it.
        for term in in_name:
            postings[term].append(i * 2 + 1)
        for term in set(terms(other)).difference(in_name):
            postings[term].append(i * 2)
    files: dict[str, bytes] = {}
    counts = {t: len(p) for t, p in postings.items()}
    leaves = _split(sorted(postings), counts, "")
    for key, members in leaves:
        files[f"t/{key}.json"] = _dumps({t: postings[t] for t in members})
    for n in range(0, len(ordered), DOCS_PER_FILE):
        files[f"d/{n // DOCS_PER_FILE}.json"] = _dumps(
            [[e["name"], e["latest"], e.get("summary") or ""]
             for e in ordered[n:n + DOCS_PER_FILE]])
    files["meta.json"] = _dumps({"v": FORMAT, "shards": [k for k, _ in leaves],
                                 "docs": DOCS_PER_FILE, "count": len(ordered)})
    return files


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
