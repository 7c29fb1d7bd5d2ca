"""Which sections a card must have, and which headings count as each.

Cards in the field are written on Hugging Face's template ("Uses", "Bias, Risks, and
Limitations", "Training Details"), by the Trainer ("Intended uses & limitations",
"Training procedure", "Training results") or by hand in the style of the Hub's early cards
("Limitations and bias", "Evaluation results"). `SECTION_HEADINGS` names the headings
accepted for each required section; one heading may cover several sections ("Bias, Risks,
and Limitations" is both Limitations and Bias and risks). Headings match whatever their
case, punctuation, emphasis or leading numbering ("2. Bias, risks & limitations").

A registry sets its own rules with `card:` in registry.yaml (`CardPolicy`): which
sections are required, and more headings per section (cards in other languages).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from mx.card import Card

REQUIRED_SECTIONS = (
    "Model details",
    "Intended use",
    "Limitations",
    "Bias and risks",
    "Training data",
    "Evaluation",
)

# The first three of each are the ones a "missing" message suggests: mx's own name, then
# the Hub template's and the Trainer's (or the Hub's early cards').
SECTION_HEADINGS: dict[str, tuple[str, ...]] = {
    "Model details": ("Model details", "Model description", "Model summary",
                      "Model overview", "Model information", "Overview", "Description"),
    "Intended use": ("Intended use", "Uses", "Intended uses & limitations", "Intended uses",
                     "Direct use", "Downstream use", "Use cases", "Intended use cases",
                     "Intended use & limitations"),
    "Limitations": ("Limitations", "Bias, risks, and limitations",
                    "Intended uses & limitations", "Limitations and bias",
                    "Limitations and biases", "Known limitations", "Bias and limitations",
                    "Risks and limitations", "Intended use & limitations",
                    "Caveats and recommendations"),
    "Bias and risks": ("Bias and risks", "Bias, risks, and limitations",
                       "Limitations and bias", "Limitations and biases", "Bias", "Biases",
                       "Risks", "Bias and limitations", "Risks and limitations",
                       "Ethical considerations", "Ethical considerations and limitations"),
    "Training data": ("Training data", "Training details", "Training procedure",
                      "Training and evaluation data", "Training dataset", "Training datasets",
                      "Training"),
    "Evaluation": ("Evaluation", "Evaluation results", "Training results", "Eval results",
                   "Results", "Benchmarks", "Benchmark results", "Performance", "Metrics"),
}

# mx rules version: part of the builder's cache key, so a change re-checks every card.
RULES_VERSION = 1

_OPTIONAL = re.compile(r"\[optional\]|\(optional\)")


def normalize_heading(title: str) -> str:
    """Case, punctuation and markup folded: 'Bias, Risks & Limitations' reads
    'bias risks and limitations'. Letters of every script are kept."""
    text = unicodedata.normalize("NFKC", title).casefold().replace("&", " and ")
    text = _OPTIONAL.sub(" ", text)
    words = re.findall(r"[^\W_]+", text)
    while len(words) > 1 and words[0].isdigit():  # "2.1 Training data"
        words.pop(0)
    return " ".join(words)


class CardPolicy(BaseModel):
    """`card:` in registry.yaml; absent, the sections of REQUIRED_SECTIONS are required."""

    model_config = ConfigDict(extra="forbid")  # a misspelt rule must not pass silently

    required_sections: list[str] = Field(default_factory=lambda: list(REQUIRED_SECTIONS))
    headings: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("required_sections")
    @classmethod
    def _sections(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in v:
            key = normalize_heading(name)
            if not key:
                raise ValueError(f"{name!r} is not a section name")
            if key in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(key)
        return v

    @model_validator(mode="after")
    def _headings(self) -> CardPolicy:
        names = {normalize_heading(s) for s in self.required_sections}
        for section, extra in self.headings.items():
            if normalize_heading(section) not in names:
                raise ValueError(f"headings: {section!r} is not one of required_sections "
                                 f"({', '.join(self.required_sections)})")
            if not all(normalize_heading(h) for h in extra):
                raise ValueError(f"headings: {section!r} lists an empty heading")
        return self

    def accepted(self, section: str) -> list[str]:
        """Headings that count as `section`, as written (built-in ones first)."""
        key = normalize_heading(section)
        builtin = next((v for k, v in SECTION_HEADINGS.items()
                        if normalize_heading(k) == key), (section,))
        extra = [h for s, hs in self.headings.items() if normalize_heading(s) == key
                 for h in hs]
        out: list[str] = []
        for h in (*builtin, *extra):
            if normalize_heading(h) not in {normalize_heading(o) for o in out}:
                out.append(h)
        return out

    def fingerprint(self) -> str:
        """Changes when the rules do: with a card's blob id, it keys a cached verdict."""
        rules = {s: sorted(normalize_heading(h) for h in self.accepted(s))
                 for s in self.required_sections}
        data = json.dumps([RULES_VERSION, rules], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(data.encode()).hexdigest()


DEFAULT_POLICY = CardPolicy()


def section_problems(card: Card, policy: CardPolicy = DEFAULT_POLICY) -> list[tuple[int, str]]:
    """(line, message) for each required section that is missing or has no text."""
    problems: list[tuple[int, str]] = []
    for section in policy.required_sections:
        accepted = policy.accepted(section)
        keys = {normalize_heading(h) for h in accepted}
        found = [h for h in card.headings if normalize_heading(h.title) in keys]
        if not found:
            problems.append((card.body_line, f"section '{section}' is missing: "
                                             f"{_suggest(accepted)}"))
        elif not any(h.has_text for h in found):
            first = found[0]
            problems.append((first.line, f"section '{section}' is empty (heading "
                                         f"'{first.title}' has only comments or placeholders "
                                         "under it)"))
    return problems


def _suggest(accepted: list[str]) -> str:
    named = [f"'{h}'" for h in accepted[:3]]
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"
    more = len(accepted) - len(named)
    return f"add a heading {listed}" + (f" ({more} more are accepted: docs/formats.md)"
                                        if more else "")
