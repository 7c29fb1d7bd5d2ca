"""The model card: Markdown with Hugging Face front matter and required sections."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mx import yamlio
from mx.errors import ConfigError

REQUIRED_SECTIONS = (
    "Model details",
    "Intended use",
    "Limitations",
    "Bias and risks",
    "Training data",
    "Evaluation",
)

_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)


class CardMeta(BaseModel):
    """Front matter with the Hugging Face keys; others are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    base_model: str | list[str] | None = None
    base_model_relation: str | None = None
    language: str | list[str] | None = None
    model_index: list[dict[str, Any]] | None = Field(default=None, alias="model-index")


@dataclass
class Card:
    meta: CardMeta
    body: str
    body_line: int  # 1-based line of the body's first line in the file
    sections: dict[str, tuple[int, str]] = field(default_factory=dict)  # title -> (line, text)


def split_front_matter(text: str, origin: str) -> tuple[Any, str, int]:
    """Return (front matter document or None, body, body's first line)."""
    if not text.startswith("---"):
        return None, text, 1
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return None, text, 1
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            doc = yamlio.load_text("".join(lines[1:i]), origin)
            return doc, "".join(lines[i + 1 :]), i + 2
    raise ConfigError(f"{origin}:1: front matter opened with '---' is never closed")


def parse_sections(body: str, first_line: int) -> dict[str, tuple[int, str]]:
    """Map each heading (lower-cased) to its line and the text under it, up to the next heading."""
    out: dict[str, tuple[int, str]] = {}
    current: str | None = None
    buf: list[str] = []
    in_fence = False
    for n, line in enumerate(body.splitlines(), start=first_line):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING_RE.match(line)
        if m:
            if current is not None:
                out[current] = (out[current][0], "\n".join(buf))
            current = m.group(2).strip().lower()
            out.setdefault(current, (n, ""))
            buf = []
        elif current is not None:
            buf.append(line)
    if current is not None:
        out[current] = (out[current][0], "\n".join(buf))
    return out


def parse_card(text: str, origin: str) -> Card:
    doc, body, body_line = split_front_matter(text, origin)
    raw = yamlio.to_plain(doc) if doc is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}:2: front matter must be a YAML mapping")
    try:
        meta = CardMeta.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = yamlio.line_of(doc, loc)
        where = f"{origin}:{line + 1}" if line else origin  # +1: the '---' line
        raise ConfigError(
            f"{where}: front matter {'.'.join(map(str, loc))}: {err['msg']}",
            hint="the front matter uses the Hugging Face model card keys",
        ) from None
    return Card(meta, body, body_line, parse_sections(body, body_line))


def section_problems(card: Card) -> list[tuple[int, str]]:
    """(line, message) for each required section that is missing or empty."""
    problems: list[tuple[int, str]] = []
    for title in REQUIRED_SECTIONS:
        found = card.sections.get(title.lower())
        if found is None:
            problems.append((card.body_line, f"section '{title}' is missing"))
        elif not _COMMENT_RE.sub("", found[1]).strip():
            problems.append((found[0], f"section '{title}' is empty"))
    return problems
