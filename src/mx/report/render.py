"""The report as GitHub-flavoured Markdown (one comment per pull request).

Values come from the pull request (paths, variants, benchmark hardware keys such as
`Xeon x8 | no gpu | onnxruntime 1.20 | CPU`), so every one is escaped for where it goes:
a table cell must not split on `|` or end at a newline, a code span must not close early on
a backtick, and plain text must not turn into emphasis, links or HTML.
"""

from __future__ import annotations

import re
from typing import Any

from mx.report import MARKER

_NEWLINES = re.compile(r"\r\n|\r|\n")
# Punctuation that means something inline in CommonMark; a backslash before any ASCII
# punctuation is always a literal, so escaping these leaves the text exactly as written.
_ACTIVE = re.compile(r"([\\`*_\[\]<>|~&!#])")


def text(value: Any) -> str:
    """`value` as literal inline text, safe in a table cell."""
    return _ACTIVE.sub(r"\\\1", _NEWLINES.sub(" ", str(value)))


def code(value: Any, in_table: bool = True) -> str:
    """`value` as a code span (safe in a table cell when `in_table`).

    The fence is one backtick longer than the longest run inside; a space pads content
    that starts or ends with a backtick (CommonMark strips one each side). In a GFM table
    a `|` splits the row even inside a code span, unless escaped: the table takes the
    backslash off again before the span is read, so `a|b` still shows as `a|b`. Outside a
    table that backslash would show, so it is not added."""
    body = _NEWLINES.sub(" ", str(value))
    fence = "`" * (max((len(r) for r in re.findall(r"`+", body)), default=0) + 1)
    if body.startswith("`") or body.endswith("`") or (
            body.startswith(" ") and body.endswith(" ") and body.strip()):
        body = f" {body} "
    if in_table:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


def fenced(body: str, info: str) -> list[str]:
    """A fenced code block whose fence no line of `body` can close (cards hold fences)."""
    fence = "`" * max([3, *(len(r) + 1 for r in re.findall(r"^\s*(`{3,})", body, re.M))])
    return [fence + info, body.rstrip(), fence]


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return str(n)


def _delta(a: dict[str, Any]) -> str:
    d, b = a["size_delta"], a["base_size"]
    if d is None or d == 0:
        return ""
    sign = "+" if d > 0 else "−"
    pct = f" ({sign}{abs(d) / b:.1%})" if b else ""
    return f"{sign}{_size(abs(d))}{pct} {'▲' if d > 0 else '▼'}"


def _mark(better: bool | None) -> str:
    return "" if better is None else ("▲ better" if better else "▼ worse")


def _num(v: Any, fmt: str = "{:.4g}") -> str:
    return fmt.format(v) if isinstance(v, int | float) else "–"


def markdown(report: dict[str, Any]) -> str:
    base, head = report["base"], report["head"]
    against = ("the work tree" if head["commit"] is None
               else f"{code(head['rev'], False)} ({head['commit'][:12]})")
    lines = [MARKER, "## mx report", "",
             f"Comparing {code(base['rev'], False)} ({base['commit'][:12]}) with {against}.", ""]
    if not report["models"]:
        lines += ["No model directories (no `mx.yaml`) in either revision.", ""]
    for m in report["models"]:
        lines += _model(m)
    lfs = report["lfs"]
    lines += ["### Git LFS", ""]
    lines += (["✅ every artifact is covered by `.gitattributes` and stored as an LFS pointer."]
              if lfs["ok"] and not lfs["problems"] else [f"- ❌ {p}" for p in lfs["problems"]])
    return "\n".join(lines) + "\n"


def _model(m: dict[str, Any]) -> list[str]:
    versions = " → ".join(str(v) for v in (m["base_version"], m["head_version"]) if v)
    title = f"{code(m['name'], False)} ({text(m['model_dir'])}) {text(versions)}"
    out = [f"### {title} — {m['status']}", ""]
    v = m["validation"]
    if v is not None:
        errors = [p for p in v["problems"] if p["severity"] == "error"]
        out.append("**Validation:** " + ("✅ passed" if v["ok"] else f"❌ {len(errors)} "
                                         f"problem{'s' if len(errors) != 1 else ''}"))
        for p in v["problems"]:
            where = f"{p['path']}:{p['line']}" if p["line"] else p["path"]
            message = _NEWLINES.sub(" ", str(p["message"]))  # mx's own words, `code` kept
            mark = "❌" if p["severity"] == "error" else "⚠️"
            out.append(f"- {mark} {code(where, False)}: {message}")
        out.append("")
    if m["artifacts"]:
        out += ["| artifact | variant | format | status | base | head | change |",
                "|---|---|---|---|---:|---:|---:|"]
        out += [row(code(a["path"]), text(a["variant"]), text(a["format"]), text(a["status"]),
                    _size(a["base_size"]), _size(a["head_size"]), _delta(a))
                for a in m["artifacts"]]
        out.append("")
    if m["quality"]:
        out += ["| artifact | quality metric | base | head | |", "|---|---|---:|---:|---|"]
        out += [row(code(q["artifact"]), text(q["metric"]), _num(q["base"]), _num(q["head"]),
                    _mark(q["better"])) for q in m["quality"]]
        out.append("")
    if m["benchmarks"]:
        out += ["| hardware | artifact | batch | p50 base | p50 head | change | throughput |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for b in m["benchmarks"]:
            ch = b["p50_change"]
            change = "" if ch is None else (f"{'+' if ch > 0 else '−'}{abs(ch):.1%} "
                                           f"{'▲ slower' if ch > 0 else '▼ faster'}")
            out.append(row(text(b["hardware"]), code(b["artifact"]), text(b["batch"]),
                           _num(b["base_p50_ms"], "{:.2f} ms"), _num(b["head_p50_ms"], "{:.2f} ms"),
                           change, _num(b["head_throughput"], "{:.1f}/s")))
        out.append("")
    card = m["card"]
    if card["diff"]:
        parts = [f"{k}: {', '.join(text(s) for s in card[k])}"
                 for k in ("changed", "added", "removed") if card[k]]
        out += ["**Model card:** " + ("; ".join(parts) or "whitespace only"), "",
                "<details><summary>card diff</summary>", "", *fenced(card["diff"], "diff"),
                "</details>", ""]
    if m["manifest_diff"]:
        out += ["<details><summary>mx.yaml diff</summary>", "",
                *fenced(m["manifest_diff"], "diff"), "</details>", ""]
    return out
