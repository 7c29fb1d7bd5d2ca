"""What a card's front matter says, for its page: datasets, languages, base models and
library as links, and `model-index` results as rows of a metrics table.

Front matter is untrusted: every value is type-checked here and escaped by the templates;
links are built only from ids that cannot be anything but a Hub path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mx.yamlbounds import MAX_YAML_BYTES
from mx.yamlio import load_text, to_plain

HUB = "https://huggingface.co"
# A Hub repository id: "name" or "owner/name" of letters, digits, '.', '_' and '-'.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
_CODE = re.compile(r"[A-Za-z][\w-]{0,34}")
MAX_METRIC_ROWS = 500


@dataclass(frozen=True)
class Link:
    text: str
    href: str | None = None  # None: shown as text
    internal: bool = False  # a page of this site (href relative to the site root)


@dataclass
class CardInfo:
    datasets: list[Link] = field(default_factory=list)
    languages: list[Link] = field(default_factory=list)
    base_models: list[Link] = field(default_factory=list)
    base_relation: str = ""
    library: Link | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)  # model-index rows

    def base_refs(self) -> list[str]:
        """Base models as written: their link changes when one joins the registry."""
        return [b.text for b in self.base_models]


def split(card: bytes) -> tuple[str | None, str]:
    """(front matter text or None, body), without parsing YAML: search needs the body of
    every card on every build, and a YAML parse costs more than the rest of the page."""
    text = card.decode("utf-8", "replace")
    if not text.startswith("---"):
        return None, text
    first, _, rest = text.partition("\n")
    if first.strip() != "---":
        return None, text
    pos = 0
    while pos <= len(rest):
        end = rest.find("\n", pos)
        line = rest[pos:] if end < 0 else rest[pos:end]
        if line.strip() in ("---", "..."):
            return rest[:pos], "" if end < 0 else rest[end + 1:]
        if end < 0:
            break
        pos = end + 1
    return None, text  # never closed: the card shows as it is


def front_matter(text: str | None) -> dict[str, Any]:
    """Parse front matter; a malformed one gives {} (the card still shows).

    libyaml (C) reads a plain document in a fraction of a millisecond, the bounded ruamel
    reader in several: a card with no anchor or alias cannot expand, so it takes the fast
    path; one with '&' or '*' goes through the reader that caps what aliases expand to."""
    if not text or len(text) > MAX_YAML_BYTES:
        return {}
    try:
        if "&" not in text and "*" not in text:
            import yaml

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            doc = yaml.load(text, Loader=loader)  # a safe loader: plain data only
        else:

            doc = to_plain(load_text(text, "card"))
    except Exception:  # malformed or too deep: show the card without its metadata
        return {}
    return doc if isinstance(doc, dict) else {}


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, str | int | float) and str(v).strip()][:50]


def card_info(meta: dict[str, Any], registry: set[str], root: str) -> CardInfo:
    info = CardInfo()
    for d in _strings(meta.get("datasets")):
        info.datasets.append(Link(d, f"{HUB}/datasets/{d}" if _HUB_ID.fullmatch(d) else None))
    for code in _strings(meta.get("language")):
        info.languages.append(Link(code, f"{HUB}/models?language={code}"
                                   if _CODE.fullmatch(code) else None))
    for base in _strings(meta.get("base_model")):
        if base in registry:
            info.base_models.append(Link(base, f"{root}models/{base}.html", internal=True))
        else:
            info.base_models.append(Link(base, f"{HUB}/{base}" if _HUB_ID.fullmatch(base)
                                         else None))
    relation = meta.get("base_model_relation")
    info.base_relation = str(relation) if isinstance(relation, str) else ""
    library = meta.get("library_name")
    if isinstance(library, str) and library.strip():
        info.library = Link(library, f"{HUB}/models?library={library}"
                            if _CODE.fullmatch(library) else None)
    info.metrics = metric_rows(meta.get("model-index"))
    return info


def _text(value: Any) -> str:
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) \
        else ""


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return _text(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def metric_rows(index: Any) -> list[dict[str, Any]]:
    """`model-index` (Hugging Face's evaluation results) as table rows: model, task,
    dataset (linked to its Hub page), split, metric and value."""
    rows: list[dict[str, Any]] = []
    for entry in index if isinstance(index, list) else []:
        if not isinstance(entry, dict):
            continue
        for result in entry.get("results") or []:
            if not isinstance(result, dict):
                continue
            task, data = _mapping(result.get("task")), _mapping(result.get("dataset"))
            dataset_id = _text(data.get("type"))
            dataset = Link(_text(data.get("name")) or dataset_id,
                           f"{HUB}/datasets/{dataset_id}" if _HUB_ID.fullmatch(dataset_id)
                           else None)
            split = " / ".join(s for s in (_text(data.get("config")), _text(data.get("split")))
                               if s)
            for metric in result.get("metrics") or []:
                if not isinstance(metric, dict) or len(rows) >= MAX_METRIC_ROWS:
                    continue
                rows.append({"model": _text(entry.get("name")),
                             "task": _text(task.get("name")) or _text(task.get("type")),
                             "dataset": dataset, "split": split,
                             "metric": _text(metric.get("name")) or _text(metric.get("type")),
                             "value": _value(metric.get("value")),
                             "verified": metric.get("verified") is True})
    return rows
