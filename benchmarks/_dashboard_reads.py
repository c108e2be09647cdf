"""The dashboard reader of the load benchmark (``bench_load.py``): the dashboard's store
reads (the functions ``dashboard/data.py`` caches, called without Streamlit) in a loop,
without pause, on a read-only store, each timed; failures are counted, never raised.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["SEARCHES", "collect", "reader_main"]

WEEKS = 26  # dashboard.data.weekly_runs' window
# (query, sort) pairs the readers cycle through: the Runs page's search box and sort.
SEARCHES = (("", None), ("project = load", "-loss"), ("loss < 0.01", "accuracy"),
            ("status = RUNNING and grad_norm > 0.5", None))


def _dashboard_queries(seen: list[str]) -> dict[str, Callable]:
    """The dashboard's store reads: the very functions ``dashboard/data.py`` caches (importing
    ``dashboard.data`` itself would load Streamlit)."""
    from dashboard import reads
    from registry.knowledge import compare
    from registry.query import count_up_to, search
    from registry.store import overview

    def recent(store, _i):  # data.recent_runs; remembers ids for the Run and Compare pages
        seen[:] = [r.id for r in store.list_runs(limit=15)]

    def search_page(store, i):  # data.search_runs
        query, sort = SEARCHES[i % len(SEARCHES)]
        search(query, sort=sort, limit=50, offset=0, store=store)

    def count(store, i):  # data.counting
        count_up_to(store, SEARCHES[i % len(SEARCHES)][0], reads.COUNT_CAP)

    def facets(store, _i):  # data.facets and data.metric_keys
        overview.facets(store)
        overview.metric_keys(store, 200)

    def weekly(store, _i):  # data.weekly_runs
        overview.weekly_runs(store, None, WEEKS)

    def run_page(store, i):  # data.get_runs, one run in full
        if not seen:
            return False  # no run yet: nothing ran, nothing is timed
        reads.get_runs(store, [seen[i % len(seen)]])

    def comparison(store, i):  # data.comparison of two runs being written
        if len(seen) < 2:
            return False
        a = i % len(seen)
        compare([seen[a], seen[(a + 1) % len(seen)]], store=store, max_points=500)

    return {"recent": recent, "search": search_page, "count": count, "facets": facets,
            "weekly": weekly, "run": run_page, "compare": comparison}


def reader_main(url: str, stop: Path) -> None:
    """Run the dashboard's queries until ``stop`` exists; prints latencies as one JSON line."""
    from registry.store import SqlStore

    store = SqlStore(url, readonly=True, migrate=False)
    seen: list[str] = []
    queries = _dashboard_queries(seen)
    latencies: dict[str, list[float]] = {name: [] for name in queries}
    errors: list[str] = []
    i = 0
    while not stop.exists():
        for name, query in queries.items():
            began = time.perf_counter()
            try:
                ran = query(store, i) is not False
            except Exception as exc:  # counted: every failure is a page the user saw break
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if ran:
                latencies[name].append(time.perf_counter() - began)
        i += 1
    store.close()
    print(json.dumps({"latencies": latencies, "failed": len(errors), "errors": errors[:10]}))


def collect(readers: list[subprocess.Popen], sync: Path) -> list[dict]:
    """Each reader's report (the last line it printed), or its error output as one failure;
    a reader's output is in ``sync``, named after the process (``bench_load._spawn``)."""
    reports = []
    for proc in readers:
        out = (sync / f"{proc.name}.out").read_text().strip()
        if proc.returncode or not out:
            err = (sync / f"{proc.name}.err").read_text()
            reports.append({"latencies": {}, "failed": 1, "errors": [err[-2000:]]})
        else:
            reports.append(json.loads(out.splitlines()[-1]))
    return reports
