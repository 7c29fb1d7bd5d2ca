"""Markdown pages of the registry site, rendered with jinja2 from the index documents."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from mx.semver import Version
from mx.site import charts
from mx.site.sanitize import card_html, code, md, safe_link, slug

STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "also", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "here", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "may", "more", "most", "must", "no", "nor", "not",
    "now", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own",
    "same", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "none", "model", "models", "used", "use",
    "using",
})
_WORD = re.compile(r"[a-z0-9][a-z0-9_.+-]{2,39}")


def human(n: object) -> str:
    try:
        size = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _env() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("mx", "templates/site"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters.update(md=md, code=code, slug=slug, human=human)
    return env


def split_card(card_text: bytes) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a card; a malformed card still shows, as text."""
    from mx.card import split_front_matter
    from mx.yamlio import to_plain

    text = card_text.decode("utf-8", "replace")
    try:
        meta, body, _ = split_front_matter(text, "card")
    except Exception:
        return {}, text
    plain = to_plain(meta) if meta is not None else {}
    return (plain if isinstance(plain, dict) else {}), body


def card_body(card_text: bytes) -> str:
    return split_card(card_text)[1]


def keywords(card_text: bytes, limit: int = 300) -> list[str]:
    """Distinct words of a card body, for search (stop words dropped, order kept)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(card_body(card_text).lower()):
        word = word.strip(".-+_")
        if len(word) >= 3 and word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
            if len(seen) >= limit:
                break
    return list(seen)


def page_path(name: str) -> str:
    return f"models/{name}.md"


class SiteRenderer:
    def __init__(self, title: str) -> None:
        self.title = title
        self.env = _env()

    def model(self, doc: dict[str, Any], latest: str, card_text: bytes) -> str:
        name = doc["name"]
        rec = doc["versions"][latest]
        manifest = rec["manifest"]
        card_meta, body = split_card(card_text)
        channels: dict[str, list[str]] = defaultdict(list)
        for channel, version in (doc.get("channels") or {}).items():
            channels[version].append(channel)
        versions = [{"version": v, "created": r.get("created", ""),
                     "channels": sorted(channels.get(v, [])), "yanked": r.get("yanked"),
                     "yanked_reason": r.get("yanked_reason", ""),
                     "prerelease": Version.parse(v).is_prerelease}
                    for v, r in sorted(doc["versions"].items(),
                                       key=lambda kv: Version.parse(kv[0]), reverse=True)]
        quality = {a["path"]: a.get("quality") for a in manifest.get("artifacts", [])}
        artifacts = [{**a, "quality": _quality(quality.get(a["path"]))} for a in rec["artifacts"]]
        files = list(rec["artifacts"])
        for extra, path in (("card", manifest.get("card", "README.md")),
                            ("manifest_file", "mx.yaml")):
            if isinstance(rec.get(extra), dict):
                files.append({"path": path, "size": rec[extra]["size"],
                              "sha256": rec[extra]["sha256"]})
        signature = manifest.get("signature") or {}
        source = manifest.get("source") or {}
        web = safe_link((doc.get("repo") or {}).get("web"))
        tag_link = f"{web.rstrip('/')}/tree/{rec.get('tag', '')}" if web else None
        benchmarks = _benchmark_tables(rec.get("benchmarks"))
        chart = charts.variant_bars(
            [(f"{a['variant']} {a['format']}", float(a["size"]), human(a["size"]))
             for a in rec["artifacts"]], "File size by variant", "")
        chart += _latency_chart(rec.get("benchmarks"))
        return str(self.env.get_template("model.md.j2").render(
            name=name, namespace=name.split("/")[0], summary=manifest.get("summary", ""),
            latest=latest, root="../../",
            meta={"license": manifest.get("license"), "task": manifest.get("task"),
                  "tags": manifest.get("tags") or [], "framework": source.get("framework"),
                  "base_model": _base_model(card_meta)},
            source_label=f"{(doc.get('repo') or {}).get('url', '')} at {rec.get('tag', '')}",
            source_link=tag_link, signer=_signer(rec.get("signature")),
            versions=versions, artifacts=artifacts, files=files,
            inputs=_tensors(signature.get("inputs")), outputs=_tensors(signature.get("outputs")),
            benchmarks=benchmarks, chart=chart, card_html=card_html(body)))

    def listings(self, entries: list[dict[str, Any]]) -> dict[str, str]:
        """Home, search, and the pages by task, by tag and by namespace."""
        env = self.env
        pages: dict[str, str] = {}
        models = [{**e, "page": page_path(e["name"])} for e in entries]
        tasks = sorted({m["task"] for m in models if m.get("task")})
        pages["index.md"] = env.get_template("home.md.j2").render(
            title=self.title, models=models, count=len(models), tasks=tasks, root="")
        pages["search.md"] = env.get_template("search.md.j2").render(root="")
        for kind, key, folder in (("Task", "task", "tasks"), ("Tag", "tags", "tags"),
                                  ("Namespace", "namespace", "namespaces")):
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for m in models:
                values = m.get(key) if key == "tags" else [
                    m["name"].split("/")[0] if key == "namespace" else m.get(key)]
                for value in values or []:
                    if value:
                        groups[str(value)].append(m)
            pages[f"{folder}/index.md"] = env.get_template("listing.md.j2").render(
                title=f"{folder.capitalize()}", kind=kind, root="../",
                groups=[{"name": g, "file": f"{slug(g)}.md", "count": len(ms)}
                        for g, ms in sorted(groups.items())])
            for group, ms in groups.items():
                pages[f"{folder}/{slug(group)}.md"] = env.get_template("listing.md.j2").render(
                    title=f"{kind}: {group}", models=ms, root="../")
        return pages


def _quality(q: Any) -> str:
    if not isinstance(q, dict):
        return ""
    return f"{q.get('metric', '')} {q.get('value', '')}".strip()


def _tensors(specs: Any) -> list[dict[str, Any]]:
    if not isinstance(specs, list):
        return []
    return [{"name": s.get("name", ""), "dtype": s.get("dtype", ""),
             "shape": "[" + ", ".join(str(d) for d in s.get("shape", [])) + "]"}
            for s in specs if isinstance(s, dict)]


def _signer(sig: Any) -> str:
    if not isinstance(sig, dict):
        return "unsigned"
    signer = sig.get("signer") or {}
    if "key_id" in signer:
        return f"signed with key {str(signer['key_id'])[:16]}"
    who = signer.get("certificate_identity") or signer.get("identity")
    return f"signed by {who} ({signer.get('issuer', '')})"


def _base_model(meta: dict[str, Any]) -> str:
    value = meta.get("base_model")
    return ", ".join(value) if isinstance(value, list) else str(value or "")


def _benchmark_rows(bench: Any) -> list[dict[str, Any]]:
    rows = bench.get("results") if isinstance(bench, dict) else bench
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _hardware(row: dict[str, Any]) -> str:
    hw = row.get("hardware")
    if isinstance(hw, dict):
        return ", ".join(f"{v}" for _, v in sorted(hw.items()) if v not in (None, ""))
    return str(hw or "unknown hardware")


def _benchmark_tables(bench: Any) -> list[dict[str, Any]]:
    """One table per hardware; columns are the scalar fields the results carry."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _benchmark_rows(bench):
        groups[_hardware(row)].append(row)
    tables = []
    for hardware, rows in sorted(groups.items()):
        columns: list[str] = []
        for row in rows:
            for key, value in row.items():
                if key != "hardware" and not isinstance(value, dict | list) and key not in columns:
                    columns.append(key)
        tables.append({"hardware": hardware, "columns": columns,
                       "rows": [[_cell(r.get(c)) for c in columns] for r in rows]})
    return tables


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _latency_chart(bench: Any) -> str:
    rows = _benchmark_rows(bench)
    first = _hardware(rows[0]) if rows else ""
    points = []
    for row in rows:
        latency = row.get("p50_ms", row.get("latency_p50_ms"))
        if _hardware(row) == first and isinstance(latency, int | float):
            label = f"{row.get('variant', '?')} b{row.get('batch', '?')}"
            points.append((label, float(latency), f"{latency:.3g}"))
    return charts.variant_bars(points, f"p50 latency on {first}", "ms")

