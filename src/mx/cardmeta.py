"""A card's front matter checked as the Hugging Face Hub reads it, every problem reported.

The rules are huggingface_hub's `ModelCardData` (and `model_index_to_eval_results` for
`model-index`): `license`, `datasets`, `language`, `tags`, `metrics` and `base_model` are
one string or a list of strings (a string means a list of one); `pipeline_tag`,
`library_name`, `license_name`, `license_link` and `base_model_relation` are strings; each
`model-index` entry has a `name` and `results`, each result a `task.type`, a
`dataset.type` and `dataset.name`, and `metrics` each with a `type` and a `value`. Other
keys are kept as they are (the Hub allows any). A field with a problem is left out of
`CardMeta`, so the rest of the card is still checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mx import yamlio

ONE_OR_MANY = ("license", "datasets", "language", "tags", "metrics", "base_model")
STRINGS = ("pipeline_tag", "library_name", "license_name", "license_link",
           "base_model_relation", "model_name")

Loc = tuple[str | int, ...]


class CardMeta(BaseModel):
    """The front matter keys mx reads; others are kept (extra)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    license: str | list[str] | None = None  # as written: one identifier, or several
    license_name: str | None = None
    tags: list[str] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    base_model: str | list[str] | None = None
    base_model_relation: str | None = None
    language: list[str] = Field(default_factory=list)
    model_index: list[dict[str, Any]] | None = Field(default=None, alias="model-index")

    @property
    def licenses(self) -> list[str]:
        if self.license is None:
            return []
        return [self.license] if isinstance(self.license, str) else list(self.license)


def check_meta(doc: Any) -> tuple[CardMeta, list[tuple[int | None, str]]]:
    """CardMeta of the fields that are right, and (line, message) for each that is not."""
    raw = yamlio.to_plain(doc) if doc is not None else {}
    report = FrontMatterProblems(doc)
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or not isinstance(key, str):
            continue  # a key with no value is no key to the Hub
        if key in ONE_OR_MANY:
            ok = _one_or_many(value, (key,), report)
            if ok is not None:
                # license and base_model keep their written form; the rest read as lists
                clean[key] = value if key in ("license", "base_model") else ok
        elif key in STRINGS:
            if isinstance(value, str):
                clean[key] = value
            else:
                report((key,), f"{shown(value)} is not a string")
        elif key == "model-index":
            if _model_index(value, report):
                clean[key] = value
        else:
            clean[key] = value
    return CardMeta.model_validate(clean), report.problems


class FrontMatterProblems:
    """Collects (line, message) problems; the line is found from the YAML location."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.problems: list[tuple[int | None, str]] = []

    def __call__(self, loc: Loc, message: str) -> None:
        line = yamlio.line_of(self.doc, loc) if self.doc is not None else None
        self.problems.append((line, f"front matter {dotted(loc)}: {message}"))


def _one_or_many(value: Any, loc: Loc, report: FrontMatterProblems) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        report(loc, f"{shown(value)} is neither a string nor a list of strings")
        return None
    ok = True
    for i, item in enumerate(value):
        if not isinstance(item, str):
            report((*loc, i), f"{shown(item)} is not a string")
            ok = False
    return list(value) if ok else None


def _model_index(value: Any, report: FrontMatterProblems) -> bool:
    before = len(report.problems)
    loc: Loc = ("model-index",)
    if not isinstance(value, list):
        report(loc, f"{shown(value)} is not a list of models (- name: ..., results: [...])")
        return False
    for i, entry in enumerate(value):
        here = (*loc, i)
        if not _mapping(entry, here, report, required=("name", "results")):
            continue
        _string(entry, "name", here, report)
        results = entry.get("results")
        if not isinstance(results, list):
            if results is not None:
                report((*here, "results"), f"{shown(results)} is not a list")
            continue
        for j, result in enumerate(results):
            _result(result, (*here, "results", j), report)
    return len(report.problems) == before


def _result(result: Any, loc: Loc, report: FrontMatterProblems) -> None:
    if not _mapping(result, loc, report, required=("task", "dataset", "metrics")):
        return
    task = result.get("task")
    if task is not None and _mapping(task, (*loc, "task"), report, required=("type",)):
        for key in ("type", "name"):
            _string(task, key, (*loc, "task"), report)
    dataset = result.get("dataset")
    if dataset is not None and _mapping(dataset, (*loc, "dataset"), report,
                                        required=("type", "name")):
        for key in ("type", "name", "config", "split", "revision"):
            _string(dataset, key, (*loc, "dataset"), report)
    metrics = result.get("metrics")
    if metrics is not None and not isinstance(metrics, list):
        report((*loc, "metrics"), f"{shown(metrics)} is not a list")
    for k, metric in enumerate(metrics if isinstance(metrics, list) else []):
        here = (*loc, "metrics", k)
        if _mapping(metric, here, report, required=("type", "value")):
            for key in ("type", "name", "config"):
                _string(metric, key, here, report)
            verified = metric.get("verified")
            if verified is not None and not isinstance(verified, bool):
                report((*here, "verified"), f"{shown(verified)} is not true or false")
    source = result.get("source")
    if source is not None and _mapping(source, (*loc, "source"), report, required=()) \
            and source.get("name") is not None and source.get("url") is None:
        # huggingface_hub's EvalResult refuses a source name without its URL
        report((*loc, "source"), "'name' is given without 'url'")


def _mapping(value: Any, loc: Loc, report: FrontMatterProblems, required: tuple[str, ...]) -> bool:
    if not isinstance(value, dict):
        report(loc, f"{shown(value)} is not a mapping")
        return False
    for key in required:
        if key not in value:
            report(loc, f"'{key}' is missing")
    return True


def _string(mapping: dict[str, Any], key: str, loc: Loc, report: FrontMatterProblems) -> None:
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        report((*loc, key), f"{shown(value)} is not a string")


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def shown(value: Any) -> str:
    """A value as a message quotes it: short, and its kind when it is a container."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
