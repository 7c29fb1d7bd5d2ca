"""What changed in one model between two states: plain data the renderers share."""

from __future__ import annotations

import difflib
import re
from typing import Any

from mx.names import DEFAULT_VARIANT
from mx.report.states import ModelState

# Quality metrics where a lower value is better; the rest (agreement, cosine) go up.
LOWER_IS_BETTER = frozenset({"max_abs_error", "mean_abs_error", "rmse", "mae", "loss"})


def _artifacts(state: ModelState | None) -> dict[str, dict[str, Any]]:
    if state is None:
        return {}
    arts = state.manifest.get("artifacts")
    return {str(a["path"]): a for a in arts if isinstance(a, dict) and "path" in a} \
        if isinstance(arts, list) else {}


def artifact_changes(base: ModelState | None, head: ModelState | None) -> list[dict[str, Any]]:
    before, after = _artifacts(base), _artifacts(head)
    rows = []
    for path in sorted(set(before) | set(after)):
        b, a = before.get(path), after.get(path)
        if b is None:
            status = "added"
        elif a is None:
            status = "removed"
        elif b.get("sha256") != a.get("sha256") or b.get("size") != a.get("size"):
            status = "changed"
        else:
            status = "unchanged"
        ref = a or b or {}
        bd = base.digests.get(path) if base else None
        hd = head.digests.get(path) if head else None
        if status == "unchanged" and bd and hd and bd != hd:
            status = "changed"  # mx.yaml records no hash, but the bytes differ
        bs = (b or {}).get("size") or (bd[1] if bd else None)
        hs = (a or {}).get("size") or (hd[1] if hd else None)
        rows.append({"path": path, "status": status, "format": ref.get("format"),
                     "variant": ref.get("variant", DEFAULT_VARIANT), "base_size": bs,
                     "head_size": hs,
                     "size_delta": hs - bs if isinstance(hs, int) and isinstance(bs, int)
                     else None})
    return rows


def quality_changes(base: ModelState | None, head: ModelState | None) -> list[dict[str, Any]]:
    before, after = _artifacts(base), _artifacts(head)
    rows = []
    for path, art in sorted(after.items()):
        q = art.get("quality")
        if not isinstance(q, dict) or "value" not in q:
            continue
        old = (before.get(path) or {}).get("quality") or {}
        metric = str(q.get("metric"))
        base_value = old.get("value") if old.get("metric") == metric else None
        rows.append({"artifact": path, "metric": metric, "against": q.get("against"),
                     "base": base_value, "head": q["value"],
                     "better": _better(base_value, q["value"], metric in LOWER_IS_BETTER)})
    return rows


def _better(base: Any, head: Any, lower_better: bool) -> bool | None:
    if not isinstance(base, int | float) or not isinstance(head, int | float) or base == head:
        return None
    return (head < base) if lower_better else (head > base)


def _bench_rows(state: ModelState | None) -> dict[tuple[str, str, int], dict[str, Any]]:
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    hardware = (state.bench or {}).get("hardware") if state else None
    if not isinstance(hardware, dict):
        return out
    for key, entry in hardware.items():
        for r in entry.get("results", []) if isinstance(entry, dict) else []:
            if isinstance(r, dict) and "artifact" in r:
                out[(str(key), str(r["artifact"]), int(r.get("batch", 1)))] = r
    return out


def bench_changes(base: ModelState | None, head: ModelState | None) -> list[dict[str, Any]]:
    before, after = _bench_rows(base), _bench_rows(head)
    rows = []
    for key in sorted(after):
        hw, artifact, batch = key
        h = after[key]
        b = before.get(key)
        hp = (h.get("latency_ms") or {}).get("p50")
        bp = ((b or {}).get("latency_ms") or {}).get("p50")
        rows.append({"hardware": hw, "artifact": artifact, "batch": batch,
                     "base_p50_ms": bp, "head_p50_ms": hp,
                     "p50_change": (hp - bp) / bp if isinstance(hp, int | float)
                     and isinstance(bp, int | float) and bp else None,
                     "base_throughput": (b or {}).get("throughput"),
                     "head_throughput": h.get("throughput"),
                     "faster": _better(bp, hp, lower_better=True)})
    return rows


_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def sections(card: str | None) -> dict[str, str]:
    """Card body by heading (front matter under '(front matter)')."""
    out: dict[str, list[str]] = {}
    current = "(top)"
    lines = (card or "").splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
        out["(front matter)"] = lines[1:end]
        lines = lines[end + 1:]
    for line in lines:
        m = _HEADING.match(line)
        if m:
            current = m.group(1)
            out.setdefault(current, [])
        else:
            out.setdefault(current, []).append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def card_changes(base: ModelState | None, head: ModelState | None) -> dict[str, Any]:
    b = sections(base.card if base else None)
    h = sections(head.card if head else None)
    return {"added": sorted(set(h) - set(b)), "removed": sorted(set(b) - set(h)),
            "changed": sorted(k for k in set(b) & set(h) if b[k] != h[k]),
            "diff": unified((base.card or "") if base else "", (head.card or "") if head else "",
                            "README.md")}


def unified(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))
