"""A chart drawn at build time: inline SVG bars of each variant's latency and file size."""

from __future__ import annotations

from html import escape


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
