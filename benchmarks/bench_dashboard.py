"""Dashboard benchmark (issue 6): the Runs page on 100,000 runs, in a real browser.

    .venv/bin/python benchmarks/bench_dashboard.py            # 100,000 runs, 7 repetitions
    .venv/bin/python benchmarks/bench_dashboard.py --quick    # 20,000 runs, 3 repetitions

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
benchmark's cases), after a warm-up that loads the server's code. Nothing here asserts on a
timing; see benchmarks/RESULTS.md.
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
from bench_knowledge import STORE_CASES, query_values
from generate import cached_sqlite

PACKAGES = ("cairn", "streamlit", "playwright", "sqlalchemy")
CACHE = Path(__file__).resolve().parent.parent / ".cairn" / "bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FIRST_PAGE_TARGET_S = 2.0
SEARCH_TARGET_S = 1.0
FIRST_CELL = "glide-cell-1-0"  # the accessible table behind the data grid: row 0, name
FIRST_ID = "glide-cell-2-0"  # row 0, short id
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
SHOWS = "([id, text]) => { const cell = document.querySelector(`[data-testid=\"${id}\"]`); " \
        "return cell !== null && cell.textContent.trim() === text; }"


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


def start_anchor(folder: Path) -> tuple[subprocess.Popen, str]:
    """The anchor: a bare Streamlit app routed like the dashboard (``st.navigation`` with a
    ``runs`` page) whose page is one 50-row table, served with the same flags."""
    from dashboard.cli import streamlit_command

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "app.py"
    script.write_text(ANCHOR_APP)
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


def first_page(browser, url: str, context=None) -> float:
    """Seconds from navigation start to the first row of the runs table, by the page's own
    clock: in a fresh context (a first visit: nothing cached), or in ``context`` (a
    returning visitor, whose browser keeps Streamlit's immutable bundles)."""
    fresh = context is None
    context = context or browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    try:
        tab.goto(url, wait_until="commit")
        seen = tab.wait_for_function(SEEN, arg=FIRST_CELL, polling="raf", timeout=60_000)
        return seen.json_value() / 1000
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs, 3 repetitions")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    print_facts([*machine_facts(PACKAGES), ("Browser", _chromium_version())])
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
    return 0


def _chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
