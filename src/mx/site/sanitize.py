"""Untrusted text on pages: card Markdown to allow-listed HTML, and values escaped
for Markdown tables. Nothing from a card or manifest reaches a page as markup."""

from __future__ import annotations

import html
import re

# What a model card may use: the structure of Markdown, and nothing that runs.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "code": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def card_html(markdown_text: str) -> str:
    """Render a card body and keep only allow-listed tags, attributes and URL schemes
    (no script, iframe, event handlers, style, or javascript:/data: links)."""
    import markdown
    import nh3

    rendered = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"],
                                 output_format="html")
    # Headings inside the card sit under the page's "Model card" heading.
    rendered = re.sub(r"<(/?)h([1-5])\b", lambda m: f"<{m[1]}h{int(m[2]) + 1}", rendered)
    return str(nh3.clean(rendered, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                         url_schemes=URL_SCHEMES, link_rel="nofollow noopener noreferrer",
                         strip_comments=True, attribute_filter=_absolute_urls_only))


def _absolute_urls_only(tag: str, attribute: str, value: str) -> str | None:
    """A card's relative links point into its repository, which the site does not
    publish: drop them rather than link to pages that do not exist (anchors stay)."""
    if attribute in ("href", "src") and not (value.startswith(("http://", "https://",
                                                                "mailto:", "#"))):
        return None
    return value


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md(value: object) -> str:
    """Plain text for a Markdown page (table cells included): HTML-escaped, Markdown
    punctuation backslash-escaped, on one line."""
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def code(value: object) -> str:
    """Text inside a code span: backticks and pipes cannot end it or split a table."""
    return html.escape(str(value).replace("`", "'").replace("|", "¦"), quote=False)


def safe_link(url: object) -> str | None:
    text = str(url or "")
    return text if re.match(r"^https?://[^\s<>\"'()]+$", text) else None


def slug(value: object) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")
    return s or "x"
