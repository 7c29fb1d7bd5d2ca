"""The model card: Markdown with Hugging Face front matter, read the way the Hub reads it.

The front matter block is found as huggingface_hub finds it (blank lines may come first;
it closes at a line that is `---`); its fields are checked in `mx.cardmeta`. The body is
parsed by a CommonMark parser (markdown-it, with GFM tables), so a `#` line in a code
fence, a setext heading or an HTML comment count exactly as GitHub and the Hub render
them. Which headings a registry requires is `mx.cardrules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mx import yamlio
from mx.cardmeta import CardMeta, check_meta
from mx.errors import ConfigError

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

# huggingface_hub's REGEX_YAML_BLOCK: optional leading whitespace, '---', the YAML, and a
# closing '---' line (trailing blanks allowed; '...' does not close it on the Hub).
_OPEN_RE = re.compile(r"\A(\s*)---[ \t]*(?:\r\n|\r|\n)")
_CLOSE_RE = re.compile(r"^---[ \t]*\r?$", re.M)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# What templates leave in a section nobody filled in: the Hub template's and the Trainer's
# placeholder, and a bold "**Label:**" with nothing after it.
_PLACEHOLDER_RE = re.compile(r"\[?\s*more information needed\s*\]?", re.I)
_LABEL_ONLY_RE = re.compile(r"^\W*(\*\*|__)[^*_]*?:?\s*(\*\*|__)\W*$")
# The Hub template's default text under "Recommendations", kept when left unfilled.
_BOILERPLATE = frozenset({
    "users both direct and downstream should be made aware of the risks biases and "
    "limitations of the model more information needed for further recommendations",
})


@dataclass
class Heading:
    title: str  # as written, Markdown stripped
    level: int  # 1 for '#', 6 for '######'
    line: int  # 1-based line in the card file
    has_text: bool = False  # anything but comments and placeholders under it (subsections too)


@dataclass
class Card:
    meta: CardMeta
    body: str
    body_line: int  # 1-based line of the body's first line in the file
    headings: list[Heading] = field(default_factory=list)
    meta_problems: list[tuple[int | None, str]] = field(default_factory=list)
    meta_line: int = 1  # the front matter's opening '---' (1 when there is none)
    key_lines: dict[str, int] = field(default_factory=dict)  # top-level key -> its line

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.meta_line)


def _front_matter(text: str) -> tuple[int, str, str, int] | None:
    """(first YAML line, YAML text, body, body's first line), 1-based; None if no block."""
    opened = _OPEN_RE.match(text)
    if opened is None:
        return None
    closed = _CLOSE_RE.search(text, opened.end())
    if closed is None:
        return None
    yaml_line = text.count("\n", 0, opened.end()) + 1
    end = closed.end()
    if text.startswith("\r\n", end):
        end += 2
    elif text.startswith(("\n", "\r"), end):
        end += 1
    body_line = text.count("\n", 0, end) + 1
    return yaml_line, text[opened.end():closed.start()], text[end:], body_line


def split_front_matter(text: str, origin: str) -> tuple[Any, str, int]:
    """Return (front matter document or None, body, body's first line)."""
    doc, body, body_line, _ = _split(text, origin)
    return doc, body, body_line


def _split(text: str, origin: str) -> tuple[Any, str, int, int]:
    found = _front_matter(text)
    if found is None:
        opened = _OPEN_RE.match(text)
        if opened:
            # Not front matter to the Hub (the card shows as text); say so rather than
            # silently reading no license.
            line = text.count("\n", 0, opened.end())
            raise ConfigError("front matter opened with '---' is never closed", path=origin,
                              line=line)
        return None, text, 1, 0
    yaml_line, yaml_text, body, body_line = found
    # Padding with newlines makes YAML error lines and node lines those of the card file.
    doc = yamlio.load_text("\n" * (yaml_line - 1) + yaml_text, origin)
    return doc, body, body_line, yaml_line


def parse_card(text: str, origin: str) -> Card:
    """The card with its front matter checked (every problem kept in `meta_problems`).

    Raises ConfigError only when the front matter cannot be read at all (bad YAML, not a
    mapping, never closed)."""
    doc, body, body_line, yaml_line = _split(text, origin)
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError("front matter must be a YAML mapping (key: value lines)",
                          path=origin, line=yaml_line)
    meta, problems = check_meta(doc)
    key_lines = {k: line for k in (doc or {}) if isinstance(k, str)
                 and (line := yamlio.line_of(doc, (k,))) is not None}
    return Card(meta, body, body_line, parse_headings(body, body_line), problems,
                max(yaml_line - 1, 1), key_lines)


def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt  # only a card being read needs the parser

    return MarkdownIt("commonmark").enable("table")


def parse_headings(body: str, first_line: int) -> list[Heading]:
    """Top-level ATX and setext headings, each told whether text follows it before the
    next heading of the same or a higher level (its subsections' text counts)."""
    tokens = _markdown().parse(body)
    headings: list[Heading] = []
    text_lines: list[int] = []  # lines where real text starts
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open" and tok.level == 0 and tok.map:
            title = _plain(tokens[i + 1]) if i + 1 < len(tokens) else ""
            headings.append(Heading(title, int(tok.tag[1]), first_line + tok.map[0]))
            i += 3  # heading_open, inline, heading_close
            continue
        if tok.map and tok.type in ("inline", "fence", "code_block", "html_block") \
                and has_text(tok.content, code=tok.type in ("fence", "code_block")):
            text_lines.append(first_line + tok.map[0])
        i += 1
    for n, h in enumerate(headings):
        end = next((o.line for o in headings[n + 1:] if o.level <= h.level), None)
        h.has_text = any(h.line < line and (end is None or line < end) for line in text_lines)
    return headings


def has_text(content: str, code: bool = False) -> bool:
    """Whether a block says something: not only comments, placeholders or bare labels."""
    if code:
        return bool(content.strip())
    stripped = _COMMENT_RE.sub("", content)
    for line in stripped.splitlines():
        line = _PLACEHOLDER_RE.sub("", line)
        if not re.search(r"\w", line) or _LABEL_ONLY_RE.match(line):
            continue
        return _words(stripped) not in _BOILERPLATE
    return False


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _plain(inline: Token) -> str:
    """A heading's text without Markdown: `**Uses**` and `[Uses](#uses)` read 'Uses'."""
    parts = [c.content for c in inline.children or [] if c.type in ("text", "code_inline")]
    return "".join(parts).strip() if parts else inline.content.strip()
