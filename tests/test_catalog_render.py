"""Rendering cards to HTML: highlighted code, and hostile Markdown and HTML made inert."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from catalog import read_card, render_html, reuse_snippet
from catalog._render import highlight_css

CARDS = Path(__file__).parent / "data" / "cards"
SAFE_SCHEMES = {"", "http", "https", "mailto"}
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "ul",
}


class Audit(HTMLParser):
    """Every tag, attribute and URL of a rendered fragment, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]


def audit(fragment: str) -> Audit:
    parser = Audit()
    parser.feed(fragment)
    parser.close()
    return parser


def assert_inert(fragment: str) -> None:
    found = audit(fragment)
    assert set(found.tags) <= ALLOWED_TAGS, set(found.tags) - ALLOWED_TAGS
    for tag, name, value in found.attributes:
        assert not name.startswith("on"), (tag, name)
        assert name != "style", (tag, value)
        if name in ("href", "src", "action", "formaction", "data", "xlink:href"):
            scheme = urlsplit(value.strip()).scheme.lower()
            assert scheme in SAFE_SCHEMES, (tag, name, value)
    lowered = fragment.lower()
    for needle in ("<script", "expression(", "<iframe",
                   "<svg", "<style", "<object", "<embed", "<meta", "<base", "<form"):
        assert needle not in lowered, needle


def test_hostile_card_is_neutralised() -> None:
    card = read_card(CARDS / "hostile_markdown.md")
    html = render_html(card)
    assert_inert(html)
    # Text survives escaped, good links survive, hostile ones lose their target.
    assert "&lt;script&gt;alert('label')&lt;/script&gt;" in html
    assert 'href="https://example.org/cairn"' in html
    assert 'href="../other/README.md"' in html
    assert "raw js link" in html and "markdown js link" in html
    # A script shown in a code block is text, highlighted, never markup.
    assert "inside a code block" in html
    assert '<div class="codehilite">' in html


@pytest.mark.parametrize("markdown_text", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](  javascript:alert(1)  )",
    "[x](java\tscript:alert(1))",
    "<a href='java\nscript:alert(1)'>x</a>",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<a href=\"#\" style=\"position:fixed;top:0;left:0;width:100%;height:100%\">overlay</a>",
    "<div style=\"behavior: url(x.htc); width: expression(alert(1))\">x</div>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<script>script>alert(1)<</script>/script>",
    "<a href=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105"
    "&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040"
    "&#0000049&#0000041\">x</a>",
    "<table background=\"javascript:alert(1)\"><tr><td>x</td></tr></table>",
    "<isindex action=javascript:alert(1) type=image>",
    "<input onfocus=alert(1) autofocus>",
    "<marquee onstart=alert(1)>x</marquee>",
    "`<script>alert(1)</script>` and ```\n<img src=x onerror=alert(1)>\n```",
])
def test_hostile_markdown_comes_out_inert(markdown_text: str) -> None:
    assert_inert(render_html(markdown_text))


def test_code_is_highlighted_with_classes() -> None:
    html = render_html("```python\nimport zoo\nmodel = zoo.create('x', num_classes=3)\n```\n")
    assert '<span class="kn">import</span>' in html
    assert ".codehilite .kn" in highlight_css()


def test_plain_markdown_renders() -> None:
    html = render_html("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n")
    assert "<h1>Title</h1>" in html
    assert "<td>1</td>" in html and "<li>one</li>" in html


def test_card_facts_table_and_reuse_snippet() -> None:
    card = read_card(CARDS / "cairn_complete.md")
    html = render_html(card)
    assert '<table class="cairn-card-facts">' in html
    assert "<th>backbone</th><td>resnet18</td>" in html
    assert "ok, scratch, dent" in html
    snippet = reuse_snippet(card)
    assert 'zoo.create("catalog:scratch-r18@3", num_classes=3)' in snippet
    compile(snippet, "snippet", "exec")  # it is valid Python
