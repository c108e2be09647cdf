"""Cards to HTML: Markdown (the ``markdown`` package, code highlighted by Pygments), then
sanitised by nh3 against an allow-list, so a card cannot run script in the dashboard.

Nothing executable survives: ``<script>``/``<style>``/``<iframe>``/``<svg>`` and the like are
dropped (script and style with their content), every ``on*`` and ``style`` attribute is
dropped, and links and images keep only http, https and mailto URLs (or relative ones), so
``javascript:``, ``vbscript:`` and ``data:`` URLs go.
"""

from __future__ import annotations

import html
import json
from typing import Any

from catalog._card import ModelCard

__all__ = ["highlight_css", "render_html", "render_markdown"]

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align"}, "td": {"align"}, "table": {"class"},
    "code": {"class"}, "div": {"class"}, "span": {"class"}, "pre": {"class"},
    "ol": {"start"},
    "abbr": {"title"},
}
_SCHEMES = {"http", "https", "mailto"}
_EXTENSIONS = ["fenced_code", "codehilite", "tables", "sane_lists"]
_CODEHILITE = {"codehilite": {"css_class": "codehilite", "guess_lang": False}}
_FIELDS = ("name", "version", "status", "project", "owner", "backbone", "license")


def render_markdown(markdown_text: str) -> str:
    """Markdown to sanitised HTML, code blocks highlighted (classes; see :func:`highlight_css`)."""
    import markdown

    raw = markdown.markdown(markdown_text, extensions=_EXTENSIONS,
                            extension_configs=_CODEHILITE, output_format="html")
    return sanitise(raw)


def sanitise(fragment: str) -> str:
    """Only allow-listed tags, attributes and URL schemes survive."""
    import nh3

    return nh3.clean(fragment, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def render_html(card_or_markdown: ModelCard | str) -> str:
    """A card (its key facts as a table, then its body) or a Markdown text as safe HTML."""
    if isinstance(card_or_markdown, str):
        return render_markdown(card_or_markdown)
    card = card_or_markdown
    return sanitise(_facts(card)) + "\n" + render_markdown(card.body)


def highlight_css(style: str = "default") -> str:
    """The Pygments stylesheet for highlighted code in rendered cards."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style=style).get_style_defs(".codehilite")


def _facts(card: ModelCard) -> str:
    """The card's main fields as an HTML table, every value escaped."""
    fm = card.front_matter
    rows = [(key, fm.get(key)) for key in _FIELDS if fm.get(key) not in (None, "")]
    if card.labels:
        rows.append(("labels", ", ".join(card.labels)))
    if card.runs:
        rows.append(("runs", ", ".join(card.runs)))
    for entry in fm.get("mov") or []:
        if isinstance(entry, dict):
            rows.append((f"MoV {entry.get('name', '')}",
                         f"{entry.get('value', '')} {entry.get('unit', '') or ''}".strip()))
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>"
                    for k, v in rows)
    return f'<table class="cairn-card-facts"><tbody>{cells}</tbody></table>'


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
