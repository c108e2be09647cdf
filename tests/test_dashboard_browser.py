"""The dashboard in a real browser: ``cairn dashboard`` on 127.0.0.1, driven by Debian's
chromium through Playwright. Screenshots go to the test's tmp folder (printed on failure)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._procs import free_port
from tests.test_dashboard_pages import fill_workspace

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROW, HEADER = 35, 35  # Streamlit's data grid: row and header height in pixels


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"cairn dashboard exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"cairn dashboard did not answer on {base} within {timeout:.0f} s")


def start_dashboard(cwd: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """``cairn dashboard`` on a free port (the command execs Streamlit: same pid)."""
    port = free_port()
    cairn = Path(sys.executable).with_name("cairn")
    with log.open("wb") as out:
        server = subprocess.Popen([str(cairn), "dashboard", "--headless", "--port", str(port)],
                                  cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}"


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


def serve(tmp_dir: Path, monkeypatch, fill) -> Iterator[tuple[str, dict[str, str]]]:
    """``cairn dashboard`` on a SQLite store that ``fill(root, store_url)`` fills."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package chromium)")
    store_url = f"sqlite:///{tmp_dir / 'store' / 'registry.db'}"
    monkeypatch.setenv("CAIRN_STORE", store_url)
    ids = fill(tmp_dir, store_url)
    env = {**os.environ, "CAIRN_STORE": store_url}
    server, base = start_dashboard(tmp_dir, env, tmp_dir / "dashboard.log")
    try:
        wait_healthy(base, server)
        yield base, ids
    finally:
        stop(server)


@pytest.fixture
def dashboard_url(tmp_dir: Path, monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:
    yield from serve(tmp_dir, monkeypatch, fill_workspace)


@pytest.fixture
def run_page_url(tmp_dir: Path, monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:
    """The dashboard of tests/test_dashboard_run_page.py's store (a rich run among others)."""
    from tests.test_dashboard_run_page import fill_workspace as fill_rich

    yield from serve(tmp_dir, monkeypatch, fill_rich)


@pytest.fixture
def page(tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        dialogs: list[str] = []
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            yield tab, dialogs
        finally:
            browser.close()


def grid_column(tab, column: int, rows: int, grid: int = 0) -> list[str]:
    """The text of one column of a data grid (its accessible table), top to bottom, once the
    grid holds ``rows`` rows (it redraws a moment after the rest of the page)."""
    from playwright.sync_api import expect

    cells = tab.get_by_test_id("stDataFrame").nth(grid)
    expect(cells.locator("table")).to_have_attribute("aria-rowcount", str(rows + 1),
                                                     timeout=60_000)
    return [cells.get_by_test_id(f"glide-cell-{column}-{r}").inner_text() for r in range(rows)]


def tick_row(tab, row: int) -> None:
    """Click the selection box of a row of the first data grid (it is drawn on a canvas)."""
    box = tab.get_by_test_id("stDataFrame").first.bounding_box()
    tab.mouse.click(box["x"] + 15, box["y"] + HEADER + ROW * row + ROW / 2)


def open_link(tab, grid, row: int, skip: int = 0):
    """Click the first link (a run's id) in ``row`` of a data grid and return the tab it
    opens. The grid is drawn on a canvas: the pointer moves along the row, right of ``skip``
    pixels (a selection column), until the grid shows the hand cursor of a link."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    y = box["y"] + HEADER + ROW * row + ROW / 2
    hand = "(g) => [...g.querySelectorAll('*')].some(e => e.style.cursor === 'pointer')"
    for x in range(skip, int(box["width"]), 6):
        tab.mouse.move(box["x"] + x, y)
        if grid.evaluate(hand):
            with tab.context.expect_page() as opened:
                tab.mouse.click(box["x"] + x + 2, y)
            new = opened.value
            new.set_default_timeout(60_000)
            return new
    raise AssertionError(f"no link in row {row} of the grid")


def test_search_compare_and_open_a_card_in_a_real_browser(dashboard_url, page, tmp_path):
    base, ids = dashboard_url
    page, dialogs = page
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.set_default_timeout(60_000)

    page.goto(f"{base}/runs")
    page.get_by_test_id("glide-cell-1-0").wait_for(state="attached")
    assert page.get_by_text("Runs 1 to 4 of 4 matching").is_visible()
    page.screenshot(path=shots / "runs.png")

    search = page.get_by_role("textbox", name="Search")
    search.fill("owner = ben")
    search.press("Enter")
    page.get_by_text("Runs 1 to 2 of 2 matching").wait_for()
    assert sorted(grid_column(page, 1, 2)) == ["r18-again", "r18-lr"]
    page.screenshot(path=shots / "search.png")

    tick_row(page, 0)
    page.get_by_role("button", name="Compare 1 selected runs").wait_for()
    tick_row(page, 1)
    button = page.get_by_role("button", name="Compare 2 selected runs")
    button.wait_for()
    button.click()
    page.get_by_role("heading", name="Compare").wait_for()
    page.get_by_text("Params").wait_for()
    # r18-again repeats r18-baseline: its group of seeds has two runs, so the groups show
    # (grid 1) before the params (grid 2).
    page.get_by_role("heading", name="Groups of seeds").wait_for()
    page.get_by_test_id("stDataFrame").nth(2).get_by_test_id("glide-cell-0-0").wait_for(
        state="attached")
    assert grid_column(page, 0, 1, grid=2) == ["lr"]  # the only param that differs
    assert sorted(grid_column(page, 1, 1, grid=2) + grid_column(page, 2, 1, grid=2)) == [
        "0.001", "0.002"]
    assert set(page.url.split("runs=")[1].split("%2C")) == {ids["again"], ids["lr"]}
    page.screenshot(path=shots / "compare.png")
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.wait_for(state="attached")
    chart.scroll_into_view_if_needed()
    chart.locator("canvas, svg").first.wait_for()  # charts draw once they are in view
    page.screenshot(path=shots / "compare-curves.png")

    page.goto(f"{base}/catalog")
    page.get_by_text("Finds scratches on painted panels.").wait_for()
    assert "scratch-detector" in page.get_by_test_id("stCode").first.inner_text()
    page.get_by_test_id("glide-cell-1-0").last.wait_for(state="attached")
    page.screenshot(path=shots / "catalog.png")
    assert dialogs == []  # the card's <script> never ran


def test_open_a_run_see_its_curves_and_image_download_and_follow_a_similar_run(
        run_page_url, page, tmp_path):
    base, ids = run_page_url
    page, dialogs = page
    page.set_default_timeout(60_000)
    page.goto(f"{base}/runs")
    page.get_by_test_id("glide-cell-1-0").wait_for(state="attached")
    search = page.get_by_role("textbox", name="Search")
    search.fill("owner = dan")
    search.press("Enter")
    page.get_by_text("Runs 1 to 1 of 1 matching").wait_for()
    assert grid_column(page, 1, 1) == ["r18-rich"]

    run = open_link(page, page.get_by_test_id("stDataFrame").first, 0, skip=40)
    run.wait_for_url(f"**/run?id={ids['rich']}")
    run.get_by_role("heading", name="r18-rich").wait_for()
    chart = run.get_by_test_id("stVegaLiteChart").first
    chart.locator("canvas, svg").first.wait_for()  # the curves are drawn
    image = run.get_by_test_id("stImage").locator("img").first
    image.scroll_into_view_if_needed()
    run.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                          arg=image.element_handle())
    assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [24, 16]
    run.screenshot(path=tmp_path / "run.png")

    run.get_by_test_id("stSelectbox").filter(has_text="Artifact").click()
    run.get_by_role("option", name="weights/model.bin").click()
    button = run.get_by_role("button", name="Download (10.2 kB)")
    with run.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "model.bin"
    assert Path(download.value.path()).read_bytes() == bytes(range(256)) * 40

    similar = run.get_by_test_id("stDataFrame").filter(has_text="similar (")
    similar.scroll_into_view_if_needed()
    first = similar.get_by_test_id("glide-cell-0-0")
    first.wait_for(state="attached")
    name = first.inner_text()
    other = open_link(run, similar, 0)
    other.get_by_role("heading", name=name).wait_for()
    assert "/run?id=" in other.url and ids["rich"] not in other.url
    other.get_by_test_id("stVegaLiteChart").first.wait_for()
    assert dialogs == []
