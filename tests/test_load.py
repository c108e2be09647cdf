"""32 training processes logging at once while the dashboard queries lose nothing and see no
error. The processes and the dashboard's queries are benchmarks/bench_load.py's; its figures
(60 s, two readers) are in benchmarks/RESULTS.md."""

from __future__ import annotations

import pytest

from benchmarks.bench_load import STEP_KEYS, VAL_KEYS, Load, run_load

LOAD = Load(processes=32, seconds=4.0, step_rate=100.0, flush_interval=0.2, readers=1)


@pytest.mark.slow
def test_thirty_two_processes_and_the_dashboard_lose_nothing(tmp_path, store_url):
    outcome = run_load(store_url, LOAD, tmp_path)

    # Every script ran to the end without an error, "database is locked" included.
    assert outcome.failures == [] and outcome.locked == 0
    assert len(outcome.writers) == LOAD.processes
    assert all(w["steps"] > 0 for w in outcome.writers)
    assert set(outcome.statuses.values()) == {"FINISHED"}
    assert len(outcome.statuses) == LOAD.processes

    # Every point, param and tag logged is stored, once, in order; summaries agree.
    keys = len(STEP_KEYS) + len(VAL_KEYS)
    assert len(outcome.accounts) == LOAD.processes * (keys + 2)
    for account in outcome.accounts:
        assert account.tried > 0, account
        assert account.stored == account.tried and account.exact, account
        if account.item.startswith("metric:"):
            assert account.summary == account.stored, account

    # The dashboard's queries ran throughout, read-only, and none failed.
    reader, = outcome.readers
    assert reader["failed"] == 0, reader["errors"]
    assert all(reader["latencies"][name] for name in
               ("search", "count", "facets", "weekly", "run", "compare")), reader["latencies"]
