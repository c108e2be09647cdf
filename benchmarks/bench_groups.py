"""Groups of seeds (issue 17): ``registry.groups`` and ``cairn runs groups`` over 100,000 runs
forming 10,000 groups, on SQLite.

    .venv/bin/python benchmarks/bench_groups.py            # 6 minutes the first time, then 2
    .venv/bin/python benchmarks/bench_groups.py --quick    # 20,000 runs in 2,000 groups

The store holds ``benchmarks/_synthetic.py``'s runs (owners, projects, 30 params, 10 metrics,
statuses: 1% RUNNING, 11% FAILED, 8% KILLED, NaN losses), regrouped: every run takes the
params, data and commit of the first run of its ten and keeps its own ``train.seed``, so
100,000 runs make 10,000 groups of ten. Their keys are stored as ``start_run`` stores them.
Built once and cached under ``.cairn/bench/`` (rebuilt when the generator or the migrations
change). Target: ``cairn runs groups`` (a page of 20, as the command shows) in under 1 s, the
whole process, and ``registry.groups`` for that page. Anchors, on the same rows: the same
command on an empty store (the process's fixed cost: start, imports, opening the store); a
bare SQL GROUP BY of every metric on the stored key; the same grouping in plain Python (every
run's params, data and code read, keys made, statistics summed), which is what grouping
without a stored key costs. Nothing asserts on a timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _common import (
    Row,
    fmt_time,
    machine_facts,
    median,
    print_facts,
    print_table,
    step,
)
from _synthetic import BATCH, GENERATOR_VERSION, SyntheticRun, synthetic_runs
from generate import (
    _after_bulk,
    _insert_rows,
    _reference_rows,
    _rows_of,
    schema_digest,
)

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cairn" / "bench"
PACKAGES = ("cairn", "sqlalchemy")
GROUPS_TARGET_S = 1.0
BENCH_VERSION = 1  # bump when the regrouping changes


@dataclass(frozen=True)
class Plan:
    runs: int = 100_000
    group_size: int = 10
    reps: int = 7
    warmups: int = 1
    history_points: int = 10  # groups read summaries only; short histories build faster

    @classmethod
    def quick(cls) -> Plan:
        return cls(runs=20_000, reps=3)


# -- the store --------------------------------------------------------------------------------


def grouped_runs(plan: Plan) -> Iterator[SyntheticRun]:
    """The synthetic runs, each made a seed of the first run of its group."""
    first: SyntheticRun | None = None
    for r in synthetic_runs(plan.runs, history_points=plan.history_points):
        if r.index % plan.group_size == 0:
            first = r
            yield r
            continue
        yield replace(r, project=first.project, params={**first.params,
                                                        "train.seed": r.params["train.seed"]},
                      data=first.data, commit=first.commit, dirty=first.dirty,
                      diff_sha256=first.diff_sha256)


def cached_store(plan: Plan) -> str:
    """The URL of the grouped store, built once."""
    name = (f"groups-n{plan.runs}-g{plan.group_size}-h{plan.history_points}"
            f"-s{GENERATOR_VERSION}.{BENCH_VERSION}-m{schema_digest()}.db")
    path = CACHE / name
    if not path.exists():
        partial = path.with_suffix(".partial")
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        step(f"building {plan.runs:,} runs in {plan.runs // plan.group_size:,} groups",
             lambda: _build(f"sqlite:///{partial}", plan))
        os.replace(partial, path)
    return f"sqlite:///{path}"


def _build(url: str, plan: Plan) -> None:
    from registry.store import SqlStore

    store = SqlStore(url)
    try:
        with store.writing() as conn:
            projects, datasets = _reference_rows(conn)
        batch: dict[str, list[dict]] = defaultdict(list)
        for r in grouped_runs(plan):
            _rows_of(r, projects, datasets, batch)  # keyed as start_run keys runs
            if len(batch["run"]) == BATCH:
                with store.writing() as conn:
                    _insert_rows(conn, batch)
                batch = defaultdict(list)
        if batch["run"]:
            with store.writing() as conn:
                _insert_rows(conn, batch)
        with store.writing() as conn:
            _after_bulk(conn)
    finally:
        store.close()


# -- measurements -----------------------------------------------------------------------------


def _workspace(url: str):
    from registry.config import Workspace

    return Workspace(root=CACHE, store_url=url, artifact_root=str(CACHE / "artifacts"),
                     catalog_dir=CACHE / "catalog", owner="bench")


def _timed(call: Callable[[], Any], plan: Plan) -> tuple[float, Any]:
    seconds, result = [], None
    for i in range(plan.warmups + plan.reps):
        t0 = time.perf_counter()
        result = call()
        if i >= plan.warmups:
            seconds.append(time.perf_counter() - t0)
    return median(seconds), result


def sql_group_by(url: str) -> int:
    """The anchor: one GROUP BY over the stored keys, counts and means only."""
    from sqlalchemy import func, select

    from registry.store import open_store
    from registry.store.schema import metric_summary, run

    store = open_store(url)
    query = (select(run.c.project_id, run.c.group_key, metric_summary.c.key, func.count(),
                    func.avg(metric_summary.c.last))
             .select_from(run.join(metric_summary, metric_summary.c.run_pk == run.c.pk))
             .where(run.c.status == "FINISHED")
             .group_by(run.c.project_id, run.c.group_key, metric_summary.c.key))
    with store.reading() as conn:
        return len({(p, k) for p, k, *_ in conn.execute(query)})


def python_grouping(url: str) -> int:
    """The other anchor: no stored key. Every run's params, data and code read, its key made
    in Python (as ``start_run`` would), then the finished runs' last values summed per group."""
    from sqlalchemy import select

    from registry._params import ParamValue
    from registry.store import open_store
    from registry.store.groups import Keying, code_of
    from registry.store.schema import dataset, metric_summary, param, run, run_dataset

    keying, store = Keying(), open_store(url)
    params: dict[int, dict[str, ParamValue]] = defaultdict(dict)
    data: dict[int, list] = defaultdict(list)
    with store.reading() as conn:
        for pk, key, vtype, text, number in conn.execute(select(
                param.c.run_pk, param.c.key, param.c.vtype, param.c.value_text,
                param.c.value_num)):
            params[pk][key] = ParamValue(vtype, text, number)
        for pk, role, digest, path in conn.execute(select(
                run_dataset.c.run_pk, run_dataset.c.role, dataset.c.hash, dataset.c.path)
                .join(dataset, dataset.c.id == run_dataset.c.dataset_id)):
            data[pk].append((role, digest, path))
        keys = {pk: (project, keying.key(code_of(commit, diff, entry), params[pk], data[pk]))
                for pk, project, commit, diff, entry, status in conn.execute(select(
                    run.c.pk, run.c.project_id, run.c.git_commit, run.c.git_diff_sha256,
                    run.c.entry_point, run.c.status)) if status == "FINISHED"}
        sums: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for pk, key, last in conn.execute(select(metric_summary.c.run_pk, metric_summary.c.key,
                                                 metric_summary.c.last)):
            if pk in keys and last is not None:
                acc = sums[(*keys[pk], key)]
                acc[0] += 1
                acc[1] += last
                acc[2] += last * last
    return len({(p, k) for p, k, _ in sums})


def cli_seconds(url: str, *args: str) -> float:
    """``cairn runs groups`` as a user runs it: a new process, imports included."""
    env = {**os.environ, "CAIRN_STORE": url, "CAIRN_ARTIFACTS": str(CACHE / "artifacts")}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "registry.cli", "runs", "groups", *args],
                          cwd=CACHE, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return time.perf_counter() - t0


def rekey_everything(url: str) -> tuple[float, int]:
    """Seconds for the first ``groups`` after every key was dropped (a restore, new
    settings; migration 0005 does the same work), on a copy of the store."""
    import registry
    from registry.store import open_store

    source = Path(url.removeprefix("sqlite:///"))
    with tempfile.TemporaryDirectory(dir=CACHE) as folder:
        copy = Path(folder) / "copy.db"
        shutil.copyfile(source, copy)
        copy_url = f"sqlite:///{copy}"
        store = open_store(copy_url)
        with store.writing() as conn:
            conn.exec_driver_sql("UPDATE run SET group_key = NULL")
        t0 = time.perf_counter()
        found = registry.groups(workspace=_workspace(copy_url))
        seconds = time.perf_counter() - t0
        store.close()
    return seconds, len(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs, 3 repetitions")
    parser.add_argument("--no-rekey", action="store_true",
                        help="skip the rekey of every run (copies the store)")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    print_facts(machine_facts(PACKAGES))
    url = cached_store(plan)
    import registry

    ws = _workspace(url)
    page, _ = step("groups, a page of 20, every metric", lambda: _timed(
        lambda: registry.groups(workspace=ws, limit=20), plan))
    one, _ = step("groups, a page of 20 by val_acc", lambda: _timed(
        lambda: registry.groups(workspace=ws, metric="val_acc", sort="-val_acc", limit=20),
        plan))
    every, found = step("groups, all of them, every metric", lambda: _timed(
        lambda: registry.groups(workspace=ws), replace(plan, reps=3)))
    sizes = sorted({g.runs for g in found})
    query, some = step("groups of one project", lambda: _timed(
        lambda: registry.groups("project = defects", workspace=ws, metric="val_acc",
                                sort="-val_acc", limit=20), plan))
    a, b = found[0].id, found[1].id
    compared, _ = step("compare_groups", lambda: _timed(
        lambda: registry.compare_groups(a, b, "val_acc", workspace=ws), plan))
    cli = step("cairn runs groups --metric val_acc (a new process)", lambda: median(
        [cli_seconds(url, "--metric", "val_acc") for _ in range(5)]))
    cli_all = step("cairn runs groups (a new process)", lambda: median(
        [cli_seconds(url) for _ in range(5)]))
    empty = _empty_store()
    bare = step("cairn runs groups on an empty store (a new process)", lambda: median(
        [cli_seconds(empty, "--metric", "val_acc") for _ in range(5)]))
    sql, _ = step("anchor: SQL GROUP BY", lambda: _timed(lambda: sql_group_by(url), plan))
    python, python_groups = step("anchor: grouping in Python", lambda: _timed(
        lambda: python_grouping(url), replace(plan, reps=1, warmups=0)))
    target = f"< {fmt_time(GROUPS_TARGET_S)}"
    rows = [
        Row("cairn runs groups --metric val_acc: whole process", fmt_time(cli), fmt_time(bare),
            f"{fmt_time(cli - bare)} over empty", target, cli < GROUPS_TARGET_S),
        Row("cairn runs groups (every metric): whole process", fmt_time(cli_all),
            fmt_time(bare), f"{fmt_time(cli_all - bare)} over empty", target,
            cli_all < GROUPS_TARGET_S),
        Row("groups(metric='val_acc', sort='-val_acc', limit=20)", fmt_time(one),
            fmt_time(sql), f"{one / sql:.2f}x SQL", target, one < GROUPS_TARGET_S),
        Row("groups(limit=20), every metric", fmt_time(page), fmt_time(sql),
            f"{page / sql:.2f}x SQL", target, page < GROUPS_TARGET_S),
        Row(f"groups(): all {len(found):,} groups (of {sizes} runs), every metric",
            fmt_time(every), fmt_time(python), f"{python / every:.0f}x faster than Python"),
        Row(f"groups('project = defects', metric=..., limit=20) of {len(some)}",
            fmt_time(query)),
        Row("compare_groups(a, b, 'val_acc') by group id", fmt_time(compared)),
        Row(f"anchor: SQL GROUP BY of every metric: {len(found):,} groups", fmt_time(sql)),
        Row(f"anchor: grouping in Python, no stored key: {python_groups:,} groups",
            fmt_time(python)),
    ]
    if not args.no_rekey:
        seconds, count = step("groups() after every key was dropped (once)",
                              lambda: rekey_everything(url))
        rows.append(Row(f"first groups() with no key stored: {count:,} groups, keys made "
                        "and written", fmt_time(seconds)))
    print_table(rows, f"Groups of seeds on SQLite ({plan.runs:,} runs, median of {plan.reps})")
    return 0


def _empty_store() -> str:
    """An empty store: the same command on it is the process's fixed cost (start, imports,
    opening the store)."""
    from registry.store import SqlStore

    url = f"sqlite:///{CACHE / 'groups-empty.db'}"
    SqlStore(url).close()
    return url


if __name__ == "__main__":
    sys.exit(main())
