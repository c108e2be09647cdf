"""``cairn sync`` (issue 19): an offline node's 1,000 runs x 1,000 points to a PostgreSQL team
store, then the same sync again with nothing changed.

    CAIRN_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/bench_sync.py            # about 3 minutes
    ... bench_sync.py --runs 200                              # a quick look

The node is ``benchmarks/_synthetic.py``'s store (10 metrics x 100 points per run, 30 params,
tags, data versions), built once and cached under ``.cairn/bench/``. Targets: the first sync
under 60 s, a sync with nothing to send under 2 s (in process, and as the whole ``cairn sync``
command). The anchor is the hand-made way, on the same runs and the same server: ``cairn runs
export`` to JSON lines and ``cairn runs import`` of them into an empty store (in process: the
same record code, without the comparison). Nothing here asserts on a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import Row, fmt_time, machine_facts, postgres_schema, print_facts, print_table
from generate import cached_sqlite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry.store import SqlStore  # noqa: E402
from registry.transfer.backup import export_runs, import_runs  # noqa: E402
from registry.transfer.sync import sync_stores  # noqa: E402

CACHE = ROOT / ".cairn" / "bench"
FIRST_TARGET_S, AGAIN_TARGET_S = 60.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    base = os.environ.get("CAIRN_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    node_url, reused = cached_sqlite(CACHE, args.runs, history_points=100,
                                     progress=lambda m: print("...", m, flush=True))
    print(f"... node store {'reused' if reused else 'built'}: {node_url}", flush=True)
    node = SqlStore(node_url)
    points = sum(s.count for r in node.list_runs(limit=10**6) for s in r.metrics.values())
    rows = []
    with postgres_schema(base) as team_url:
        team = SqlStore(team_url)
        first, result = _timed(lambda: sync_stores(node, team))
        print("...", result.summary(), flush=True)
        again, quiet = _timed(lambda: sync_stores(node, team))
        command = _command_seconds(node_url, team_url)
        rows += [
            Row(f"first sync: {len(result.sent):,} runs, {points:,} points", fmt_time(first),
                target=f"< {FIRST_TARGET_S:.0f} s", passed=first < FIRST_TARGET_S),
            Row(f"sync again, nothing changed ({quiet.unchanged:,} unchanged, "
                f"{len(quiet.sent) + len(quiet.updated)} sent)", fmt_time(again),
                target=f"< {AGAIN_TARGET_S:.0f} s", passed=again < AGAIN_TARGET_S),
            Row("cairn sync again, nothing changed: whole process", fmt_time(command),
                target=f"< {AGAIN_TARGET_S:.0f} s", passed=command < AGAIN_TARGET_S)]
    with postgres_schema(base) as other_url:
        anchor = _anchor(node, SqlStore(other_url))
    rows[0].anchor, rows[0].ratio = fmt_time(anchor), f"{first / anchor:.2f}x"
    print_facts(machine_facts(["sqlalchemy", "psycopg"]))
    print_table(rows, f"cairn sync to PostgreSQL ({args.runs:,} runs)")


def _timed(call):
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def _command_seconds(node_url: str, team_url: str) -> float:
    env = {**os.environ, "CAIRN_STORE": node_url}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "cairn"), "sync", "--to", team_url],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _anchor(node: SqlStore, empty: SqlStore) -> float:
    """Export every run to JSON lines and import them: the backup path, by hand."""
    start = time.perf_counter()
    lines = [json.dumps(d, allow_nan=False) for d in export_runs(node, node.run_keys(
        limit=10**9))]
    import_runs(empty, lines)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
