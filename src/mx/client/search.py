"""Search a registry's listing (`index/search.json`): every word must match somewhere
(name, summary, task, tags, or the distinctive words of the card)."""

from __future__ import annotations

from typing import Any


def search(models: list[dict[str, Any]], query: str, task: str | None = None,
           tag: str | None = None) -> list[dict[str, Any]]:
    """Matching entries, best first: name hits before summary, tag or task hits."""
    words = [w for w in query.lower().split() if w]
    hits: list[tuple[int, str, dict[str, Any]]] = []
    for m in models:
        tags = [str(t).lower() for t in m.get("tags") or []]
        if task and (m.get("task") or "").lower() != task.lower():
            continue
        if tag and tag.lower() not in tags:
            continue
        name = m["name"].lower()
        text = " ".join([name, str(m.get("summary") or "").lower(),
                         str(m.get("task") or "").lower(), str(m.get("keywords") or ""), *tags])
        if not all(w in text for w in words):
            continue
        score = sum(3 if w in name else 1 for w in words)
        if words and name.split("/")[-1] == " ".join(words):
            score += 10
        hits.append((-score, name, m))
    return [m for _, _, m in sorted(hits, key=lambda h: (h[0], h[1]))]
