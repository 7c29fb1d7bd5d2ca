"""HTML pages of the registry site, rendered with jinja2 (autoescaped) from the index
documents into the theme's shells (mx.site.shell)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from mx.semver import Version
from mx.site import benchmarks, cardfacts
from mx.site.governance import AUDIT_EVENTS, Change, History
from mx.site.sanitize import card_html, safe_link, slug
from mx.site.shell import Page

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
# The page's own section ids: a card heading never takes one (its slug gets a suffix).
PAGE_IDS = frozenset({"mx-title", "mx-results", "mx-versions", "mx-lifecycle", "mx-variants",
                      "mx-io",
                      "mx-files", "mx-benchmarks", "mx-model-card"}
                     | {f"mx-bench-{i}" for i in range(1, 65)})
_SECTIONS = (("mx-results", "Evaluation results"), ("mx-versions", "Versions"),
             ("mx-lifecycle", "Lifecycle"), ("mx-variants", "Variants"),
             ("mx-io", "Inputs and outputs"), ("mx-files", "Files"),
             ("mx-benchmarks", "Benchmarks"))


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


def template_env(bytecode: Path | None = None) -> Any:
    """The site's jinja2 environment; `bytecode`: a folder to keep compiled templates in
    (compiling them costs more than a rebuild's other work on the listings)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # auto_reload off: templates are package data, and checking each one's mtime on every
    # render costs more than rendering a small page.
    env = Environment(loader=PackageLoader("mx", "templates/site"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=True, auto_reload=False,
                      bytecode_cache=None if bytecode is None else _bytecode(bytecode))
    env.filters.update(slug=slug, human=human)
    return env


def _bytecode(folder: Path) -> Any:
    from jinja2 import FileSystemBytecodeCache

    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemBytecodeCache(str(folder))


def card_body(card_text: bytes) -> str:
    return cardfacts.split(card_text)[1]


# Words of the model card template's headings and placeholders (Hugging Face's and
# mx's): in nearly every card, so they tell no model apart.
TEMPLATE_WORDS = frozenset({
    "card", "details", "description", "developed", "funded", "shared", "type", "language",
    "license", "finetuned", "sources", "repository", "paper", "demo", "uses", "direct",
    "downstream", "scope", "bias", "risks", "limitations", "recommendations", "users",
    "aware", "started", "code", "training", "procedure", "preprocessing", "hyperparameters",
    "speeds", "sizes", "times", "evaluation", "testing", "factors", "metrics", "results",
    "examination", "environmental", "impact", "hardware", "hours", "provider", "compute",
    "region", "carbon", "emitted", "technical", "specifications", "objective",
    "infrastructure", "software", "citation", "bibtex", "apa", "glossary", "information",
    "needed", "authors", "contact", "intended", "data",
})
KEYWORDS_PER_MODEL = 80


def keywords(card_text: bytes, limit: int = KEYWORDS_PER_MODEL) -> list[str]:
    """Distinct words of a card body, for search, in reading order: stop words, numbers and
    the card template's own words dropped. A card's words alone decide (no statistic over
    the registry), so a rebuild computes them for the cards that changed only."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(card_body(card_text).lower()):
        word = word.strip(".-+_")
        if (len(word) >= 3 and word not in STOPWORDS and word not in TEMPLATE_WORDS
                and not word.isdigit()):
            seen.setdefault(word, None)
            if len(seen) >= limit:
                break
    return list(seen)


def page_path(name: str) -> str:
    return f"models/{name}.html"


class SiteRenderer:
    """Page contents; mx.site.shell puts them into the theme's HTML."""

    def __init__(self, title: str, registry: set[str], bytecode: Path | None = None) -> None:
        self.title = title
        self.registry = registry  # model names: a base model among them links to its page
        self.env = template_env(bytecode)
        self.templates = {name: self.env.get_template(f"{name}.html.j2")
                          for name in ("toc", "model", "home", "search", "listing", "audit")}

    def _page(self, slot: str, path: str, title: str, content: str,
              toc: list[dict[str, Any]] | None = None) -> Page:
        from markupsafe import escape

        toc_html = self.templates["toc"].render(items=toc or [])
        return Page(slot, path, str(escape(title)), content, toc_html)

    def model(self, doc: dict[str, Any], latest: str, card_text: bytes,
              history: History | None = None) -> tuple[Page, list[str]]:
        """The page, and the base models its card names (their links follow the registry)."""
        history = history or History.of(None)
        name = doc["name"]
        rec = doc["versions"][latest]
        manifest = rec["manifest"]
        front, body = cardfacts.split(card_text)
        info = cardfacts.card_info(cardfacts.front_matter(front), self.registry, "../../")
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
        bench = rec.get("benchmarks")
        tables = benchmarks.tables(bench, human)
        chart = benchmarks.variant_bars(
            [(f"{a['variant']} {a['format']}", float(a["size"]), human(a["size"]))
             for a in rec["artifacts"]], "File size by variant", "")
        chart += benchmarks.latency_chart(bench)
        card = card_html(body, PAGE_IDS)
        inputs, outputs = _tensors(signature.get("inputs")), _tensors(signature.get("outputs"))
        content = self.templates["model"].render(
            name=name, namespace=name.split("/")[0], summary=manifest.get("summary", ""),
            latest=latest, root="../../", info=info,
            multi_model=len({r["model"] for r in info.metrics}) > 1,
            meta={"license": manifest.get("license"), "task": manifest.get("task"),
                  "tags": manifest.get("tags") or [], "framework": source.get("framework")},
            source_label=f"{(doc.get('repo') or {}).get('url', '')} at {rec.get('tag', '')}",
            source_link=f"{web.rstrip('/')}/tree/{rec.get('tag', '')}" if web else None,
            signer=_signer(rec.get("signature")), versions=versions, artifacts=artifacts,
            files=files, inputs=inputs, outputs=outputs, benchmarks=tables, chart=chart,
            card_html=card.html, current=sorted((doc.get("channels") or {}).items()),
            changes=history.of_model(name), history_note=history.note)
        shown = {"mx-results": bool(info.metrics), "mx-io": bool(inputs or outputs),
                 "mx-benchmarks": bool(tables)}
        toc: list[dict[str, Any]] = [{"id": i, "text": t, "children": []}
                                     for i, t in _SECTIONS if shown.get(i, True)]
        toc.append({"id": "mx-model-card", "text": "Model card",
                    "children": [{"id": h.id, "text": h.text} for h in card.headings
                                 if h.level <= 3]})
        return (self._page("model", page_path(name), name, content, toc), info.base_refs())

    def audit(self, history: History) -> Page:
        """The registry's lifecycle: every channel and yank change, newest first."""
        changes: list[Change] = history.changes[:AUDIT_EVENTS]
        return self._page("audit", "audit.html", "Audit", self.templates["audit"].render(
            root="", history=history, changes=changes, models=self.registry,
            truncated=len(history.changes) > AUDIT_EVENTS, limit=AUDIT_EVENTS))

    def listings(self, entries: list[dict[str, Any]]) -> dict[str, Page]:
        """Home, search, and the pages by task, by tag and by namespace."""
        pages: dict[str, Page] = {}
        # each model's row, made once: it is on the home page and on several listings
        rows_home = {id(m): model_row(m, "", True) for m in entries}
        rows_listed = {id(m): model_row(m, "../", False) for m in entries}

        def model_rows(ms: list[dict[str, Any]], _root: str, with_task: bool) -> Markup:
            made = rows_home if with_task else rows_listed
            return Markup("\n".join(made[id(m)] for m in ms))

        tasks = sorted({m["task"] for m in entries if m.get("task")})
        pages["index.html"] = self._page("home", "index.html", self.title, self.templates[
            "home"].render(title=self.title, rows=model_rows(entries, "", True),
                                   count=len(entries), tasks=len(tasks), root=""))
        pages["search.html"] = self._page("search", "search.html", "Search", self.templates[
            "search"].render(root=""))
        listing = self.templates["listing"]
        for kind, key, folder in (("Task", "task", "tasks"), ("Tag", "tags", "tags"),
                                  ("Namespace", "namespace", "namespaces")):
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for m in entries:
                values = m.get(key) if key == "tags" else [
                    m["name"].split("/")[0] if key == "namespace" else m.get(key)]
                for value in values or []:
                    if value:
                        groups[str(value)].append(m)
            title = folder.capitalize()
            pages[f"{folder}/index.html"] = self._page(folder, f"{folder}/index.html", title,
                                                       listing.render(
                title=title, kind=kind, root="../", rows="",
                groups=[{"name": g, "file": f"{slug(g)}.html", "count": len(ms)}
                        for g, ms in sorted(groups.items())]))
            for group, ms in sorted(groups.items()):
                path = f"{folder}/{slug(group)}.html"
                title = f"{kind}: {group}"
                pages[path] = self._page("listing", path, title, listing.render(
                    title=title, rows=model_rows(ms, "../", False), groups=None, kind=kind,
                    root="../"))
        return pages


def model_row(m: dict[str, Any], root: str, with_task: bool) -> str:
    """One row of a table of models. Written here, not in a template loop: the home page
    and the big tag pages list every model, and jinja takes ten times as long a row."""
    name = escape(m["name"])
    task = ""
    if with_task:
        t = m.get("task")
        task = (f'<td><a href="{root}tasks/{slug(t)}.html">{escape(t)}</a></td>' if t
                else "<td></td>")
    return (f'<tr><td><a href="{root}models/{name}.html">{name}</a></td>'
            f'<td>{escape(m["latest"])}</td>{task}<td>{escape(m.get("summary") or "")}'
            "</td></tr>")


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
