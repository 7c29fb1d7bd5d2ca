"""The benchmark tables and latency chart of a model page, read from the results file
`mx bench` writes (mx_bench 1: {"hardware": {key: {cpu, cores, gpu, backend, ...,
"results": [...]}}}). The file comes from the model's repository: every value is
type-checked, and a file of another shape shows no table rather than failing the build.
Charts are inline SVG drawn at build time: no script or fetch when the page is viewed."""

from __future__ import annotations

from html import escape
from typing import Any

COLUMNS = ("Variant", "Format", "Batch", "Threads", "p50 ms", "p90 ms", "p99 ms", "p50 vs fp32",
           "Items/s", "Load ms", "Peak MiB", "Size", "Measured")
MAX_ROWS = 1000


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _fmt(value: Any, digits: str = ".3g") -> str:
    n = _num(value)
    return "-" if n is None else format(n, digits)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def hardware_label(key: str, hw: dict[str, Any]) -> str:
    """'<cpu> x<cores>, <gpu>, <backend> <version>, <provider>' from the entry's fields."""
    cpu, gpu = _str(hw.get("cpu")), _str(hw.get("gpu"))
    cores = hw.get("cores")
    parts = [f"{cpu} x{cores}" if cpu and isinstance(cores, int) else cpu, gpu or "no GPU",
             f"{_str(hw.get('backend'))} {_str(hw.get('backend_version'))}".strip(),
             _str(hw.get("provider"))]
    label = ", ".join(p for p in parts if p)
    return label if cpu else key


def _entries(bench: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    hardware = bench.get("hardware") if isinstance(bench, dict) else None
    if not isinstance(hardware, dict):
        return []
    out = []
    for key, hw in sorted(hardware.items()):
        if isinstance(hw, dict) and isinstance(hw.get("results"), list):
            rows = [r for r in hw["results"] if isinstance(r, dict)][:MAX_ROWS]
            if rows:
                out.append((hardware_label(str(key), hw), rows))
    return out


def _p50(row: dict[str, Any]) -> float | None:
    lat = row.get("latency_ms")
    return _num(lat.get("p50")) if isinstance(lat, dict) else None


def tables(bench: Any, human: Any) -> list[dict[str, Any]]:
    """One table per hardware entry; p50 is also given against the fp32 ONNX row of the
    same batch and threads (what `mx bench --compare` prints)."""
    out = []
    for label, rows in _entries(bench):
        base = {(r.get("batch"), r.get("threads")): _p50(r) for r in rows
                if r.get("variant") == "fp32" and r.get("format") == "onnx"}
        cells = []
        for r in rows:
            lat: dict[str, Any] = r["latency_ms"] if isinstance(r.get("latency_ms"), dict) else {}
            p50, ref = _p50(r), base.get((r.get("batch"), r.get("threads")))
            ratio = f"{p50 / ref:.2f}x" if p50 is not None and ref else "-"
            size = r.get("size")
            cells.append([_str(r.get("variant")) or _str(r.get("artifact")),
                          _str(r.get("format")), _fmt(r.get("batch"), "g"),
                          _fmt(r.get("threads"), "g") if r.get("threads") else "default",
                          _fmt(lat.get("p50")), _fmt(lat.get("p90")), _fmt(lat.get("p99")),
                          ratio, _fmt(r.get("throughput"), ".4g"),
                          _fmt(r.get("load_time_ms"), ".4g"), _fmt(r.get("peak_memory_mb"), ".4g"),
                          human(size) if _num(size) is not None else "-",
                          _str(r.get("measured_at"))[:10]])
        out.append({"hardware": label, "columns": COLUMNS, "rows": cells})
    return out


def latency_chart(bench: Any) -> str:
    """p50 latency of each variant and batch on the first hardware entry."""
    entries = _entries(bench)
    if not entries:
        return ""
    label, rows = entries[0]
    points = []
    for r in rows:
        p50 = _p50(r)
        if p50 is not None:
            name = f"{_str(r.get('variant'))} {_str(r.get('format'))} b{_fmt(r.get('batch'), 'g')}"
            points.append((name, p50, f"{p50:.3g}"))
    short = label if len(label) <= 48 else label[:47] + "…"  # the SVG is 520 units wide
    return variant_bars(points, f"p50 latency on {short}", "ms")


def variant_bars(rows: list[tuple[str, float, str]], title: str, unit: str) -> str:
    """Horizontal bars: (label, value, shown value) per row; '' when nothing to draw."""
    rows = [r for r in rows if r[1] > 0]
    if not rows:
        return ""
    top = max(v for _, v, _ in rows)
    bar_h, gap, label_w, width = 22, 8, 150, 520
    height = 30 + len(rows) * (bar_h + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value, shown) in enumerate(rows):
        y = 28 + i * (bar_h + gap)
        w = max(2.0, (width - label_w - 90) * value / top)
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                     'fill="#3f51b5" rx="3"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12">'
                     f'{escape(shown)} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
