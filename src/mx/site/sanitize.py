"""Untrusted text on pages: card Markdown to allow-listed HTML, rendered as the Hugging Face
Hub and GitHub do (CommonMark with GitHub's tables, strikethrough and autolinks), headings
given ids so the table of contents and in-card links reach them. Nothing from a card runs."""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from dataclasses import dataclass

# What a model card may use: the structure of Markdown, and nothing that runs.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height", "align"},
    "td": {"align"},
    "th": {"align"},
    "p": {"align"},
    "div": {"align"},
    "code": {"class"},
    **{h: {"id"} for h in _HEADINGS},
}
URL_SCHEMES = {"http", "https", "mailto"}
# A heading id is a slug: never the theme's own ids (`__config`, `__drawer`: they start
# with an underscore), which a card could otherwise shadow in getElementById.
_SAFE_ID = re.compile(r"[^\W_][\w-]{0,127}")
_CODE_CLASS = re.compile(r"language-[\w+#.-]{1,40}")


@dataclass(frozen=True)
class PageHeading:
    level: int  # on the page: card headings sit one level under the page's "Model card"
    text: str
    id: str


@dataclass(frozen=True)
class CardHtml:
    html: str
    headings: list[PageHeading]


def _to_html(markdown_text: str) -> str:
    import cmarkgfm
    from cmarkgfm.cmark import Options

    # GitHub's own renderer (cmark-gfm: CommonMark, tables, strikethrough, autolinks, task
    # lists, tag filter). UNSAFE keeps the card's raw HTML (<img>, <div align>, <details>)
    # for nh3 to clean below, instead of dropping it all.
    return str(cmarkgfm.github_flavored_markdown_to_html(markdown_text,
                                                         options=Options.CMARK_OPT_UNSAFE))


def heading_slug(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    s = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    return s.lstrip("_-")[:100] or "section"


# cmark-gfm writes headings without attributes; a card's raw <h2 id=...> is not matched.
_HEADING = re.compile(r"<h([1-6])>(.*?)</h\1>", re.S)
_TASK = re.compile(r'<input type="checkbox"( checked="")? disabled="" /> ?')


def card_html(markdown_text: str, reserved: Collection[str] = ()) -> CardHtml:
    """Render a card body and keep only allow-listed tags, attributes and URL schemes
    (no script, iframe, event handlers, style, or javascript:/data: links). PageHeading ids
    never repeat one another or an id in `reserved` (the page's own sections)."""
    import nh3

    used = set(reserved)
    headings: list[PageHeading] = []

    def anchor(m: re.Match[str]) -> str:
        text = " ".join(html.unescape(re.sub(r"<[^>]*>", "", m[2])).split())
        base = heading_slug(text)
        slug_, n = base, 0
        while slug_ in used:
            n += 1
            slug_ = f"{base}-{n}"
        used.add(slug_)
        headings.append(PageHeading(min(int(m[1]) + 1, 6), text, slug_))
        return f'<h{m[1]} id="{slug_}">{m[2]}</h{m[1]}>'

    rendered = _HEADING.sub(anchor, _to_html(markdown_text))
    # Task-list boxes as characters: the allow-list has no <input>.
    rendered = _TASK.sub(lambda m: "\u2611 " if m[1] else "\u2610 ", rendered)
    clean = nh3.clean(rendered, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                      url_schemes=URL_SCHEMES, link_rel="nofollow noopener noreferrer",
                      strip_comments=True, attribute_filter=_filter_attribute)
    # Headings inside the card sit under the page's "Model card" heading.
    shifted = re.sub(r"<(/?)h([1-5])\b", lambda m: f"<{m[1]}h{int(m[2]) + 1}", str(clean))
    return CardHtml(shifted, headings)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """A card's relative links point into its repository, which the site does not
    publish: drop them rather than link to pages that do not exist (anchors stay)."""
    if attribute in ("href", "src"):
        return value if value.startswith(("http://", "https://", "mailto:", "#")) else None
    if attribute == "id":
        return value if _SAFE_ID.fullmatch(value) else None
    if attribute == "class":  # only a code block's language: no hooks into the page's scripts
        return value if _CODE_CLASS.fullmatch(value) else None
    return value


def safe_link(url: object) -> str | None:
    text = str(url or "")
    return text if re.match(r"^https?://[^\s<>\"'()]+$", text) else None


def slug(value: object) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")
    return s or "x"
