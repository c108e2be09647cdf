"""Hostile content in the dashboard, in a real browser (``cairn dashboard`` on 127.0.0.1 and
Debian's chromium through Playwright): a hostile model card (tests/data/hostile/card.md) in the
Catalog page, and a run whose name, params, notes, tags, metric and artifact names are markup
(tests/data/hostile/corpus.json and more) on its run page. No script runs (no dialog, no
console message, ``window.__pwned`` untouched in every frame, even after firing the events
inline handlers listen to) and no forbidden element, attribute or URL reaches the DOM.
Requests for anything but the dashboard are answered by the test (aborted): nothing leaves
the machine, and no name is resolved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_dashboard_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    start_dashboard,
    stop,
    wait_healthy,
)
from tests.test_hostile import TALLY, figures

__all__ = ["figures"]  # the module's figures fixture (tests/test_hostile.py), used here too

pytestmark = pytest.mark.slow

CARD = Path(__file__).parent / "data" / "hostile" / "card.md"
# Where the card's text is shown: its HTML, and the header and caption built from its fields.
SHOWN = '[data-testid="stHtml"], [data-testid="stHeading"], [data-testid="stCaptionContainer"]'
AUDIT = """(selector) => {
    const found = [];
    const forbidden = new Set(["SCRIPT", "IFRAME", "FRAME", "OBJECT", "EMBED", "SVG", "MATH",
        "STYLE", "LINK", "META", "BASE", "FORM", "INPUT", "BUTTON", "VIDEO", "AUDIO",
        "SOURCE", "NOSCRIPT", "MARQUEE", "TEMPLATE"]);
    const urls = ["href", "src", "action", "formaction", "data", "xlink:href", "srcdoc",
                  "background", "poster"];
    for (const root of document.querySelectorAll(selector)) {
        for (const el of root.querySelectorAll("*")) {
            // Streamlit draws a heading's anchor icon as an SVG of its own.
            const own = root.closest('[data-testid="stHeading"]') && el.closest("svg");
            if (forbidden.has(el.tagName.toUpperCase()) && !own)
                found.push(root.dataset.testid + ": " + el.outerHTML.slice(0, 120));
            for (const attr of el.attributes) {
                const name = attr.name.toLowerCase();
                if (name.startsWith("on")) found.push(el.tagName + " " + name);
                if (name === "style" && root.dataset.testid === "stHtml")
                    found.push(el.tagName + " style=" + attr.value);
                if (urls.includes(name) && /^\\s*(javascript|vbscript|data):/i.test(
                        attr.value.replace(/[\\u0000-\\u0020]/g, "")))
                    found.push(el.tagName + " " + name + "=" + attr.value);
            }
        }
    }
    for (const el of document.querySelectorAll("iframe, object, embed, frame"))
        found.push("page " + el.tagName);
    for (const el of document.querySelectorAll("script"))
        if (/__pwned|pwned/.test(el.textContent + (el.src || "")))
            found.push("page script " + (el.src || el.textContent.slice(0, 60)));
    return found;
}"""
FIRE = """(selector) => {
    let fired = 0;
    const events = ["mouseover", "mouseenter", "focus", "toggle", "load", "error", "start",
                    "begin", "animationstart"];
    for (const root of document.querySelectorAll(selector))
        for (const el of root.querySelectorAll("*"))
            for (const type of events) { el.dispatchEvent(new Event(type)); fired++; }
    return fired;
}"""


@pytest.fixture
def hostile_dashboard(tmp_dir: Path, monkeypatch):
    """The dashboard of a workspace whose catalog holds only the hostile card."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package chromium)")
    import catalog
    from registry.config import load_workspace

    store_url = f"sqlite:///{tmp_dir / 'store' / 'registry.db'}"
    monkeypatch.setenv("CAIRN_STORE", store_url)
    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    monkeypatch.delenv("CAIRN_CATALOG", raising=False)
    (tmp_dir / "cairn.toml").write_text('owner = "tester"\n')
    folder = tmp_dir / "catalog" / "hostile-card"
    folder.mkdir(parents=True)
    shutil.copy(CARD, folder / "README.md")
    result = catalog.index(workspace=load_workspace())
    assert result.indexed == ["hostile-card@1"], result
    server, base = start_dashboard(tmp_dir, {**os.environ, "CAIRN_STORE": store_url},
                                   tmp_dir / "dashboard.log")
    try:
        wait_healthy(base, server)
        yield base
    finally:
        stop(server)


@contextlib.contextmanager
def watching(base: str) -> Iterator[tuple[Any, dict[str, list]]]:
    """A chromium tab that records dialogs, console messages and every outside request."""
    playwright = pytest.importorskip("playwright.sync_api")
    seen: dict[str, list] = {"dialogs": [], "console": [], "outside": [], "errors": [],
                             "requests": []}
    # No name is ever resolved: requests that are not the dashboard's are aborted below.
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        tab = browser.new_page(viewport={"width": 1400, "height": 1600})
        tab.add_init_script("window.__pwned = 0;")
        tab.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        tab.on("console", lambda m: seen["console"].append(m.text))
        tab.on("pageerror", lambda e: seen["errors"].append(str(e)))

        def gate(route) -> None:
            seen["requests"].append(route.request.url)
            if route.request.url.startswith(base):
                route.continue_()
            else:
                seen["outside"].append((route.request.resource_type, route.request.url))
                route.abort()

        tab.route("**/*", gate)
        try:
            yield tab, seen
        finally:
            browser.close()


@pytest.fixture
def watched_page(hostile_dashboard: str):
    """A watched tab (:func:`watching`) on the hostile card's dashboard."""
    with watching(hostile_dashboard) as (tab, seen):
        yield tab, hostile_dashboard, seen


def test_a_hostile_card_runs_no_script_in_the_catalog_page(watched_page, tmp_path: Path):
    tab, base, seen = watched_page
    tab.set_default_timeout(60_000)
    tab.goto(f"{base}/catalog")
    tab.get_by_text("HOSTILE-BODY-MARKER").wait_for()
    tab.get_by_text("raw js link").wait_for()  # the card's HTML is in the page
    tab.wait_for_timeout(1500)  # let anything that would load or fire do so
    fired = tab.evaluate(FIRE, SHOWN)
    tab.wait_for_timeout(500)
    tab.screenshot(path=tmp_path / "hostile-card.png", full_page=True)

    pwned = [frame.evaluate("() => window.__pwned") for frame in tab.frames]
    assert pwned and all(value == 0 for value in pwned), pwned
    assert seen["dialogs"] == [], seen["dialogs"]
    assert not [m for m in seen["console"] if "pwned" in m], seen["console"]
    assert tab.evaluate(AUDIT, SHOWN) == []
    # The card's text is shown, escaped; its good link survives.
    shown = tab.locator('[data-testid="stHtml"]').inner_text()
    assert "<script>window.__pwned=1</script>" in shown  # a label, shown as text
    assert tab.locator('[data-testid="stHtml"] a[href="https://example.org/cairn"]').count() == 1
    # The one outside request a card can cause is an image (the page asked; nothing left).
    from_card = [(kind, url) for kind, url in seen["outside"] if ".example/" in url]
    assert {kind for kind, _ in from_card} <= {"image"}, from_card
    # The card's <style> did not hide the page.
    assert tab.evaluate("getComputedStyle(document.body).display") != "none"
    assert tab.get_by_text("HOSTILE-BODY-MARKER").is_visible()
    figures = TALLY["browser (hostile card)"]
    figures["pages checked"] += 1
    figures["events fired at the card's elements"] += fired
    figures["frames whose window.__pwned changed"] += sum(value != 0 for value in pwned)
    figures["outside requests of the card (images, aborted)"] += len(from_card)


# -- the run page ------------------------------------------------------------------------------

RUN_NAME = '<img src=x onerror=alert("name")>'
METRICS = ["<img src=x onerror=alert('metric')>", "[m](javascript:alert('metric'))",
           "system/<svg onload=alert('system')>"]
ARTIFACTS = ['<img src=x onerror=alert("artifact")>.png', "[a](javascript:alert('a')).txt",
             "<script>alert('file')</script>.bin"]
WARNING = "<script>alert('warning')</script> [w](javascript:alert('warning'))"
# Where the run's text is shown outside data grids and charts (drawn on canvases).
RUN_SHOWN = ('[data-testid="stMarkdownContainer"], [data-testid="stHeading"], '
             '[data-testid="stCaptionContainer"], [data-testid="stImageCaption"], '
             '[data-testid="stWidgetLabel"]')


def record_hostile_run(root: Path) -> str:
    """A run whose every text (name, question, notes, conclusion, params, tags, metric and
    artifact names, a warning) is markup that would run a script if rendered."""
    import registry
    from registry.config import load_workspace
    from tests.test_dashboard_run_page import png
    from tests.test_hostile import CORPUS, usable_name

    texts = [s for s in CORPUS["strings"] if usable_name(s)]
    run = registry.start_run(
        project="<b>hostile</b>", name=RUN_NAME, workspace=load_workspace(),
        question="[click](javascript:alert('question'))", notes="\n\n".join(texts),
        params={**{f"p{i}": text for i, text in enumerate(texts)},
                "<b onmouseover=alert('key')>k</b>": "<script>alert('param')</script>"},
        tags={"<i>t</i>": "<script>alert('tag')</script>"})
    for step in range(3):
        run.log_metrics({key: float(step) for key in METRICS}, step=step)
    files = root / "hostile-files"
    files.mkdir()
    for name in ARTIFACTS:
        path = png(files / "x.png") if name.endswith(".png") else files / "x.bin"
        if not name.endswith(".png"):
            path.write_bytes(name.encode())
        run.log_artifact(path, name=name)
    run._warn(WARNING)
    run.set_conclusion("<iframe src=javascript:alert('conclusion')></iframe>")
    run.end()
    return run.id


@pytest.fixture
def hostile_run_page(tmp_dir: Path, monkeypatch):
    """A watched tab (:func:`watching`) and the dashboard of a store holding the hostile run."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package chromium)")
    store_url = f"sqlite:///{tmp_dir / 'store' / 'registry.db'}"
    monkeypatch.setenv("CAIRN_STORE", store_url)
    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    (tmp_dir / "cairn.toml").write_text('owner = "tester"\n[runs]\nsystem_interval = 0\n')
    run_id = record_hostile_run(tmp_dir)
    server, base = start_dashboard(tmp_dir, {**os.environ, "CAIRN_STORE": store_url},
                                   tmp_dir / "dashboard.log")
    try:
        wait_healthy(base, server)
        with watching(base) as (tab, seen):
            yield tab, f"{base}/run?id={run_id}", seen
    finally:
        stop(server)


def test_hostile_run_text_renders_inert_on_the_run_page(hostile_run_page, tmp_path: Path):
    tab, url, seen = hostile_run_page
    tab.set_default_timeout(60_000)
    tab.goto(url)
    tab.get_by_role("heading", name=RUN_NAME).wait_for()  # the name, shown as typed
    tab.get_by_test_id("stVegaLiteChart").first.locator("canvas, svg").first.wait_for()
    tab.get_by_test_id("stExpander").filter(has_text="System:").click()
    tab.get_by_test_id("stImage").locator("img").first.wait_for()
    tab.wait_for_timeout(1500)  # let anything that would load or fire do so
    fired = tab.evaluate(FIRE, RUN_SHOWN)
    tab.wait_for_timeout(500)
    tab.screenshot(path=tmp_path / "hostile-run.png", full_page=True)

    pwned = [frame.evaluate("() => window.__pwned") for frame in tab.frames]
    assert pwned and all(value == 0 for value in pwned), pwned
    assert seen["dialogs"] == [], seen["dialogs"]
    assert tab.evaluate(AUDIT, RUN_SHOWN) == []
    # The markup's image (src=x, beside the page) was never asked for; the only request
    # leaving the machine is Streamlit's own (the page icon's font), aborted.
    assert not [u for u in seen["requests"] if u.split("?")[0].endswith("/x")], seen["requests"]
    assert all("fonts.gstatic.com" in url for _, url in seen["outside"]), seen["outside"]
    # The texts are shown as typed.
    page_text = tab.locator("body").inner_text()
    for text in (WARNING, "[click](javascript:alert('question'))", "<b>hostile</b>",
                 "<iframe src=javascript:alert('conclusion')></iframe>", ARTIFACTS[0]):
        assert text in page_text, text
    figures = TALLY["browser (hostile run page)"]
    figures["pages checked"] += 1
    figures["events fired at the run's text"] += fired
    figures["frames whose window.__pwned changed"] += sum(value != 0 for value in pwned)
