"""Dashboard benchmark (issues 6 and 16): the Runs page on 100,000 runs and the run page of a
big run, in a real browser.

    .venv/bin/python benchmarks/bench_dashboard.py            # 100,000 runs, 7 repetitions
    .venv/bin/python benchmarks/bench_dashboard.py --quick    # 20,000 runs, 3 repetitions
    .venv/bin/python benchmarks/bench_dashboard.py --only run-page   # one of the two

The store comes from ``benchmarks/generate.py`` (cached under ``.cairn/bench/``). The script
starts ``cairn dashboard --headless`` on a free port of 127.0.0.1 on that store and drives
Debian's chromium through Playwright; beside it, as the anchor, a bare Streamlit app with the
same router (``st.navigation``, a ``runs`` page) whose page is one 50-row table, served the
same way and opened at the same path. **First page**: a new browser context (no cookies, no
cached files) opens ``/runs``; the clock is the browser's own (``performance.now()``, zero at
navigation start), read on the first animation frame at which the table's first row is in
the page. **Search**: on an open Runs page, a query is typed and Enter pressed; the clock
stops on the first animation frame at which the table's first row is the first run the
registry itself returns for that query. Both are medians over varied queries (the knowledge
benchmark's cases), after a warm-up that loads the server's code. **Run page** (issue 16,
``_run_page.py``): a run with 20 metrics x 100,000 points and 200 artifacts; the first paint
of its curves in a new browser context, by the same clock, beside a bare Streamlit page
drawing one chart of 100,000 of those points. Nothing here asserts on a timing; see
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import Row, fmt_time, machine_facts, median, print_facts, print_table, step
from _run_page import ANCHOR_APP as RUN_ANCHOR_APP
from _run_page import CHART_DRAWN, RunPagePlan, curve_reads, record_big_run
from bench_knowledge import STORE_CASES, query_values
from generate import cached_sqlite

from dashboard._curves import CHART_POINTS

PACKAGES = ("cairn", "streamlit", "playwright", "sqlalchemy")
CACHE = Path(__file__).resolve().parent.parent / ".cairn" / "bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FIRST_PAGE_TARGET_S = 2.0
SEARCH_TARGET_S = 1.0
CURVES_TARGET_S = 2.0
FIRST_CELL = "glide-cell-1-0"  # the accessible table behind the data grid: row 0, name
FIRST_ID = "glide-cell-2-0"  # row 0, the link to its run page
ANCHOR_APP = """\
import streamlit as st


def runs():
    st.dataframe([{"name": f"run {i}", "id": f"{i:08x}", "value": i} for i in range(50)])


st.set_page_config(page_title="anchor", layout="wide")
st.navigation([st.Page(runs, title="Runs", url_path="runs", default=True)]).run()
"""
# Polled on every animation frame (Playwright's default polls at growing intervals, up to
# 500 ms apart, which would stop the clock late).
SEEN = "id => { const cell = document.querySelector(`[data-testid=\"${id}\"]`); " \
       "return cell ? performance.now() : null; }"
# The id column links to the run page: its cell's text is the address, "run?id=<full id>".
SHOWS = "([id, text]) => { const cell = document.querySelector(`[data-testid=\"${id}\"]`); " \
        "return cell !== null && cell.textContent.includes(`id=${text}`); }"


@dataclass(frozen=True)
class Plan:
    runs: int = 100_000
    reps: int = 7
    seed: int = 0

    @classmethod
    def quick(cls) -> Plan:
        return cls(runs=20_000, reps=3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(store_url: str, folder: Path) -> tuple[subprocess.Popen, str]:
    """``cairn dashboard`` in an empty folder, on the store; waits until it is healthy."""
    port = free_port()
    cairn = Path(sys.executable).with_name("cairn")
    return _serve([str(cairn), "dashboard", "--headless", "--port", str(port)], port, folder,
                  {**os.environ, "CAIRN_STORE": store_url})


def start_anchor(folder: Path, app: str = ANCHOR_APP) -> tuple[subprocess.Popen, str]:
    """The anchor: a bare Streamlit app routed like the dashboard (``st.navigation``; by
    default a ``runs`` page that is one 50-row table), served with the same flags."""
    from dashboard.cli import streamlit_command

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "app.py"
    script.write_text(app)
    port = free_port()
    args = streamlit_command(host="127.0.0.1", port=port, headless=True)
    args[args.index("run") + 1] = str(script)
    return _serve(args, port, folder, dict(os.environ))


def _serve(args: list[str], port: int, folder: Path, env: dict[str, str]
           ) -> tuple[subprocess.Popen, str]:
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(args, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{args[0]} exited: {(folder / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return server, base
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise TimeoutError(f"{' '.join(args)} did not become healthy in 120 s")


def first_page(browser, url: str, context=None, seen: tuple[str, str | None] = (SEEN, FIRST_CELL)
               ) -> float:
    """Seconds from navigation start to the first row of the runs table (or to what
    ``seen``, a page function and its argument, waits for), by the page's own clock: in a
    fresh context (a first visit: nothing cached), or in ``context`` (a returning visitor,
    whose browser keeps Streamlit's immutable bundles)."""
    fresh = context is None
    context = context or browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    try:
        tab.goto(url, wait_until="commit")
        shown = tab.wait_for_function(seen[0], arg=seen[1], polling="raf", timeout=60_000)
        return shown.json_value() / 1000
    finally:
        tab.close()
        if fresh:
            context.close()


def search(tab, query: str, first_id: str) -> float:
    """Seconds from pressing Enter to the query's first run shown in the table."""
    box = tab.get_by_role("textbox", name="Search")
    box.fill(query)
    began = time.perf_counter()
    box.press("Enter")
    tab.wait_for_function(SHOWS, arg=[FIRST_ID, first_id], polling="raf", timeout=60_000)
    return time.perf_counter() - began


def expected_first(store_url: str, queries: list[str]) -> list[str]:
    """The short id of each query's first run, as the registry answers it (newest first)."""
    from registry.query import search
    from registry.store import SqlStore

    store = SqlStore(store_url, readonly=True, migrate=False)
    try:
        pages = [search(query, sort="-started", limit=1, store=store) for query in queries]
        return [page.runs[0].id[:8] if page.runs else "" for page in pages]
    finally:
        store.close()


def measure(plan: Plan, store_url: str) -> dict[str, list[float]]:
    """Times of: the dashboard's first Runs page (``cold``: the first after the server
    started; ``first``: the rest), the anchor's page, and searches."""
    from playwright.sync_api import sync_playwright

    values = query_values(plan.reps + 1, plan.seed)
    queries = [case.cairn(v)[0] for v in values for case in STORE_CASES][: plan.reps + 1]
    firsts = expected_first(store_url, queries)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        server, base = start_dashboard(store_url, Path(folder))
        anchor, anchor_base = start_anchor(Path(folder) / "anchor")
        try:
            times["cold"] = [first_page(browser, f"{base}/runs")]  # imports, fills caches
            first_page(browser, f"{anchor_base}/runs")
            for _ in range(plan.reps):  # interleaved, so both see the same machine load
                times.setdefault("first", []).append(first_page(browser, f"{base}/runs"))
                times.setdefault("anchor", []).append(first_page(browser, f"{anchor_base}/runs"))
            returning = browser.new_context(viewport={"width": 1400, "height": 1000})
            first_page(browser, f"{base}/runs", returning)
            times["returning"] = [first_page(browser, f"{base}/runs", returning)
                                  for _ in range(plan.reps)]
            returning.close()
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(f"{base}/runs")
            tab.get_by_test_id(FIRST_CELL).wait_for(state="attached", timeout=60_000)
            search(tab, queries[0], firsts[0])  # warm-up
            times["search"] = [search(tab, q, f) for q, f in
                               zip(queries[1:], firsts[1:], strict=True) if f]
        finally:
            for process in (server, anchor):
                process.terminate()
                process.wait(timeout=15)
            browser.close()
    return times


def measure_run_page(plan: RunPagePlan) -> dict[str, list[float]]:
    """Times of the run page's first paint of its curves (``cold``: the first after the
    server started; ``first``: the rest) and of the anchor's chart, and the curve read."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {}
    drawn = (CHART_DRAWN, None)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        store_url, run_id = step(
            f"a run of {plan.metrics} metrics x {plan.points:,} points, {plan.artifacts} "
            "artifacts", lambda: record_big_run(Path(folder) / "ws", plan))
        times["read"] = [curve_reads(store_url, run_id, 4)]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        server, base = start_dashboard(store_url, Path(folder) / "ws")  # its artifacts too
        anchors = [start_anchor(where, RUN_ANCHOR_APP)
                   for where in anchor_folders(Path(folder), CHART_POINTS)]
        try:
            page = f"{base}/run?id={run_id}"
            bare = {"anchor": f"{anchors[0][1]}/run", "anchor-small": f"{anchors[1][1]}/run"}
            times["cold"] = [first_page(browser, page, seen=drawn)]
            for url in bare.values():
                first_page(browser, url, seen=drawn)
            for _ in range(plan.reps):  # interleaved, so all see the same machine load
                times.setdefault("first", []).append(first_page(browser, page, seen=drawn))
                for key, url in bare.items():
                    times.setdefault(key, []).append(first_page(browser, url, seen=drawn))
        finally:
            for process in (server, *(a[0] for a in anchors)):
                process.terminate()
                process.wait(timeout=15)
            browser.close()
    return times


def anchor_folders(folder: Path, small: int) -> list[Path]:
    """Two anchors' folders: one with the run's ``points.npy`` (one metric's whole history),
    one with ``small`` points of it, about what the run page draws."""
    import numpy as np

    whole, few = folder / "anchor", folder / "anchor-small"
    for where in (whole, few):
        where.mkdir()
    os.replace(folder / "ws" / "points.npy", whole / "points.npy")
    points = np.load(whole / "points.npy")
    np.save(few / "points.npy", points[:, :: max(1, points.shape[1] // small)])
    return [whole, few]


def run_page_rows(plan: RunPagePlan, times: dict[str, list[float]]) -> list[Row]:
    first, anchor = median(times["first"]), median(times["anchor"])
    return [
        Row(f"Run page, first paint of its curves in a new browser context ({plan.metrics} "
            f"metrics x {plan.points:,} points, {plan.artifacts} artifacts; median of "
            f"{len(times['first'])})", fmt_time(first),
            anchor=f"bare Streamlit chart of {plan.points:,} points {fmt_time(anchor)}",
            ratio=f"{first / anchor:.2f}x", target=f"< {CURVES_TARGET_S:g} s",
            passed=first < CURVES_TARGET_S),
        Row(f"Anchor: bare Streamlit chart of about {CHART_POINTS:,} points (what the page "
            "draws)", fmt_time(median(times["anchor-small"])),
            ratio=f"page {first / median(times['anchor-small']):.2f}x"),
        Row("Run page, first load after the server started (one)", fmt_time(times["cold"][0])),
        Row(f"Curves read and thinned on the server (4 metrics x {plan.points:,} points, "
            "median of 5)", fmt_time(times["read"][0])),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs (or points), 3 "
                                                             "repetitions")
    parser.add_argument("--only", choices=("runs", "run-page"),
                        help="measure one page only")
    args = parser.parse_args(argv)
    print_facts([*machine_facts(PACKAGES), ("Browser", _chromium_version())])
    if args.only != "run-page":
        runs_page(Plan.quick() if args.quick else Plan())
    if args.only != "runs":
        plan = RunPagePlan.quick() if args.quick else RunPagePlan()
        times = step("browser measurements (run page)", lambda: measure_run_page(plan))
        for key, values in times.items():
            print(f"    {key:9}: {', '.join(fmt_time(t) for t in values)}")
        print_table(run_page_rows(plan, times), "Dashboard run page (SQLite)")
    return 0


def runs_page(plan: Plan) -> None:
    store_url, reused = step(f"store of {plan.runs:,} runs",
                             lambda: cached_sqlite(CACHE, plan.runs, seed=plan.seed))
    print(f"    {store_url} ({'cached' if reused else 'built'})")
    times = step("browser measurements", lambda: measure(plan, store_url))
    for key, values in times.items():
        print(f"    {key:9}: {', '.join(fmt_time(t) for t in values)}")
    first, anchor, searches = median(times["first"]), median(times["anchor"]), times["search"]
    rows = [
        Row(f"Runs page, first page in a new browser context ({plan.runs:,} runs, median of "
            f"{len(times['first'])})", fmt_time(first),
            anchor=f"bare Streamlit table {fmt_time(anchor)}", ratio=f"{first / anchor:.2f}x",
            target=f"< {FIRST_PAGE_TARGET_S:g} s", passed=first < FIRST_PAGE_TARGET_S),
        Row(f"Runs page, returning visitor: browser cache warm (median of "
            f"{len(times['returning'])})", fmt_time(median(times["returning"]))),
        Row("Runs page, first load after the server started (one)",
            fmt_time(times["cold"][0])),
        Row(f"search to result in the browser (median of {len(searches)} queries)",
            fmt_time(median(searches)), target=f"< {SEARCH_TARGET_S:g} s",
            passed=median(searches) < SEARCH_TARGET_S),
        Row("search, slowest", fmt_time(max(searches))),
    ]
    print_table(rows, f"Dashboard on {plan.runs:,} runs (SQLite)")


def _chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
