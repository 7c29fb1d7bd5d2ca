"""The report as GitHub-flavoured Markdown (one comment per pull request)."""

from __future__ import annotations

from typing import Any

from mx.report import MARKER


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return str(n)


def _delta(row: dict[str, Any]) -> str:
    d, b = row["size_delta"], row["base_size"]
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
               else f"`{head['rev']}` ({head['commit'][:12]})")
    lines = [MARKER, "## mx report", "",
             f"Comparing `{base['rev']}` ({base['commit'][:12]}) with {against}.", ""]
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
    out = [f"### `{m['name']}` ({m['model_dir']}) {versions} — {m['status']}", ""]
    v = m["validation"]
    if v is not None:
        errors = [p for p in v["problems"] if p["severity"] == "error"]
        out.append("**Validation:** " + ("✅ passed" if v["ok"] else f"❌ {len(errors)} "
                                         f"problem{'s' if len(errors) != 1 else ''}"))
        for p in v["problems"]:
            where = f"{p['path']}:{p['line']}" if p["line"] else p["path"]
            out.append(f"- {'❌' if p['severity'] == 'error' else '⚠️'} `{where}`: {p['message']}")
        out.append("")
    if m["artifacts"]:
        out += ["| artifact | variant | format | status | base | head | change |",
                "|---|---|---|---|---:|---:|---:|"]
        out += [f"| `{a['path']}` | {a['variant']} | {a['format']} | {a['status']} | "
                f"{_size(a['base_size'])} | {_size(a['head_size'])} | {_delta(a)} |"
                for a in m["artifacts"]]
        out.append("")
    if m["quality"]:
        out += ["| artifact | quality metric | base | head | |", "|---|---|---:|---:|---|"]
        out += [f"| `{q['artifact']}` | {q['metric']} | {_num(q['base'])} | {_num(q['head'])} "
                f"| {_mark(q['better'])} |" for q in m["quality"]]
        out.append("")
    if m["benchmarks"]:
        out += ["| hardware | artifact | batch | p50 base | p50 head | change | throughput |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for b in m["benchmarks"]:
            ch = b["p50_change"]
            change = "" if ch is None else (f"{'+' if ch > 0 else '−'}{abs(ch):.1%} "
                                           f"{'▲ slower' if ch > 0 else '▼ faster'}")
            out.append(f"| {b['hardware']} | `{b['artifact']}` | {b['batch']} | "
                       f"{_num(b['base_p50_ms'], '{:.2f} ms')} | "
                       f"{_num(b['head_p50_ms'], '{:.2f} ms')} | {change} | "
                       f"{_num(b['head_throughput'], '{:.1f}/s')} |")
        out.append("")
    card = m["card"]
    if card["diff"]:
        parts = [f"{k}: {', '.join(card[k])}" for k in ("changed", "added", "removed")
                 if card[k]]
        out += ["**Model card:** " + ("; ".join(parts) or "whitespace only"), "",
                "<details><summary>card diff</summary>", "", "```diff", card["diff"].rstrip(),
                "```", "</details>", ""]
    if m["manifest_diff"]:
        out += ["<details><summary>mx.yaml diff</summary>", "", "```diff",
                m["manifest_diff"].rstrip(), "```", "</details>", ""]
    return out
