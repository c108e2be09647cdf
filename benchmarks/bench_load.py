"""Load benchmark (issue 9): 32 training processes log at once while the dashboard reads.

    .venv/bin/python benchmarks/bench_load.py                     # 32 processes x 60 s, both
    .venv/bin/python benchmarks/bench_load.py --quick             # 8 processes x 10 s
    .venv/bin/python benchmarks/bench_load.py --dialect sqlite --processes 64 --seconds 120
    CAIRN_BENCH_POSTGRES_URL=postgresql+psycopg://user@host/db .venv/bin/python \\
        benchmarks/bench_load.py --dialect postgresql             # another server

Each training process is a script of its own, as a team's would be: ``start_run`` through
``CAIRN_STORE``, then, at a steady step rate for the whole period, four metrics every step, two
more every 50 steps, a param every 200 steps and a tag between them. Meanwhile reader processes
run the dashboard's reads (those ``dashboard/data.py`` caches; ``_dashboard_reads.py``) in a loop,
without pause, on a read-only store. Afterwards every run's stored history is counted against
what its script logged. The anchor is the same loop, the same processes, with the registry
replaced by appending to an in-memory queue.

Exit status 1 when any point, param or tag was lost, or any error ("database is locked"
included) reached a training script or a dashboard query. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

if __package__:  # imported (tests/test_load.py) rather than run as a script
    from benchmarks import _common, _dashboard_reads
else:
    import _common
    import _dashboard_reads

Row, fmt_rate, fmt_time = _common.Row, _common.fmt_rate, _common.fmt_time
median, percentile = _common.median, _common.percentile

__all__ = ["Account", "Load", "Outcome", "run_load"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cairn", "sqlalchemy", "psycopg")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STEP_KEYS = ("loss", "accuracy", "lr", "grad_norm")
VAL_KEYS = ("val_loss", "val_accuracy")
VAL_EVERY, PARAM_EVERY = 50, 200
START_PARAMS = {"lr": 0.1, "batch_size": 64, "optimizer": "adam"}
# What the registry logs when it gives up on a write (points spooled to a file, a run's end).
_LOST = ("could not reach the store", "could not record that run", "metric writer failed")


@dataclass(frozen=True)
class Load:
    """How hard the training processes and the dashboard push."""

    processes: int = 32
    seconds: float = 60.0
    step_rate: float = 100.0  # steps per second per process; 0: as fast as the loop goes
    flush_interval: float = 0.2  # the writer thread's (production default: 1 s)
    readers: int = 2


@dataclass(frozen=True)
class Account:
    """One thing a script logged, against what the store holds of it."""

    run_id: str
    item: str  # "metric:KEY", "params" or "tags"
    tried: int
    stored: int
    exact: bool  # metrics: the stored steps are exactly those logged, each once
    summary: int | None = None  # metrics: the summary's count

    @property
    def lost(self) -> int:
        return self.tried - self.stored


@dataclass
class Outcome:
    """What one load run tried, what survived, and what the scripts and the dashboard saw."""

    sink: str
    load: Load
    writers: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # anything a script should not see
    locked: int = 0  # scripts that saw "locked" in an error or on stderr
    retried: int = 0  # scripts whose writer thread had a batch refused (kept, retried)
    accounts: list[Account] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # run id -> status in the store
    readers: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # go -> the last run ended (its last point durable)
    wal_bytes: int | None = None
    load_average: str = ""  # the machine's, when the last process ended

    def total(self, what: str, metrics: bool = True) -> int:
        """Sum of ``what`` (tried, stored) over metric points, or over params and tags."""
        return sum(getattr(a, what) for a in self.accounts
                   if a.item.startswith("metric:") == metrics)

    @property
    def ok(self) -> bool:
        return (not self.failures and not self.locked
                and all(a.lost == 0 and a.exact for a in self.accounts)
                and all(r["failed"] == 0 for r in self.readers))


# -- a training process -----------------------------------------------------------------------


def _list_run() -> SimpleNamespace:
    """The anchor: a run whose calls append to a queue, as ``log_metric`` does, and write
    nothing anywhere (bounded, so that ``--step-rate 0`` cannot exhaust memory)."""
    points: deque[tuple] = deque(maxlen=100_000)
    return SimpleNamespace(id=None, status=None, log_param={}.__setitem__,
                           set_tag={}.__setitem__, log_metric=lambda key, value, step:
                           points.append((key, step, value, time.time())))


def _call(errors: list[str], waits: list[float], fn: Callable, *args) -> None:
    began = time.perf_counter()
    try:
        fn(*args)
    except Exception as exc:  # counted and reported: the run goes on, as a script's would
        errors.append(f"{type(exc).__name__}: {exc}")
    waits.append(time.perf_counter() - began)


def _train(run, load: Load) -> dict:
    """The training loop: log at ``load.step_rate`` steps per second for ``load.seconds``."""
    logged = dict.fromkeys((*STEP_KEYS, *VAL_KEYS), 0)
    params, tags, errors, waits = dict(START_PARAMS), {"bench": "load"}, [], []
    period = 1.0 / load.step_rate if load.step_rate else 0.0
    start = due = time.perf_counter()
    step = 0
    while time.perf_counter() - start < load.seconds:
        loss = 1.0 / (step + 1)
        for key, value in zip(STEP_KEYS, (loss, 1.0 - loss, 0.1, 0.5 + loss), strict=True):
            run.log_metric(key, value, step)
            logged[key] += 1
        if step % VAL_EVERY == 0:
            for key, value in zip(VAL_KEYS, (loss * 1.1, 0.9 - loss), strict=True):
                run.log_metric(key, value, step)
                logged[key] += 1
        if step % PARAM_EVERY == 0:
            params[f"checkpoint_{step // PARAM_EVERY}"] = step
            _call(errors, waits, run.log_param, f"checkpoint_{step // PARAM_EVERY}", step)
        elif step % PARAM_EVERY == PARAM_EVERY // 2:
            tags["epoch"] = str(step // PARAM_EVERY)
            _call(errors, waits, run.set_tag, "epoch", tags["epoch"])
        step += 1
        if period:  # a slow step is not made up for by a burst, as in real training
            due = max(due + period, time.perf_counter())
            time.sleep(max(0.0, due - time.perf_counter()))
    return {"steps": step, "logged": logged, "params": params, "tags": tags, "errors": errors,
            "sync_s": waits, "loop_s": time.perf_counter() - start}


def writer_main(index: int, sink: str, sync: Path, seconds: float, step_rate: float) -> None:
    """One training process; prints its report as one JSON line."""
    if sink == "list":
        handle = contextlib.nullcontext(_list_run())
    else:
        import registry

        handle = registry.start_run(project="load", name=f"load-{index:03d}",
                                    params={"worker": index, **START_PARAMS},
                                    tags={"bench": "load"})
    with handle as run:
        (sync / f"ready-{index}").touch()
        while not (sync / "go").exists():
            time.sleep(0.01)
        cpu = time.process_time()  # from here on: the loop, the writer thread, the last flush
        report = _train(run, Load(seconds=seconds, step_rate=step_rate))
        loop_end = time.time()
        pool = run._store.engine.pool if sink == "registry" else None
        report["connections"] = pool.checkedin() + pool.checkedout() if pool else 0
    report.update(id=run.id, status=run.status, ended=time.time(),
                  end_s=time.time() - loop_end, cpu_s=time.process_time() - cpu)
    print(json.dumps(report))


# -- the harness -------------------------------------------------------------------------------


def run_load(url: str | None, load: Load, workdir: Path, *, sink: str = "registry") -> Outcome:
    """Run ``load`` against the store at ``url`` (sink "registry") or against an in-memory
    queue (sink "list", url None); then count what survived."""
    sync = workdir / f"load-{sink}-{time.time_ns()}"
    sync.mkdir(parents=True)
    env = {**os.environ, "CAIRN_ARTIFACTS": str(sync / "artifacts"),
           "CAIRN_FLUSH_INTERVAL": str(load.flush_interval),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if sink == "registry":
        from registry.store import SqlStore

        env["CAIRN_STORE"] = url
        SqlStore(url).close()  # an existing store: creation races are tests/test_concurrency's
    procs: list[subprocess.Popen] = []
    try:
        readers = [_spawn(["reader", url, str(sync / "stop")], sync, f"r{i}", env, procs)
                   for i in range(load.readers if sink == "registry" else 0)]
        writers = [_spawn(["writer", str(i), sink, str(sync), str(load.seconds),
                           str(load.step_rate)], sync, f"w{i}", env, procs)
                   for i in range(load.processes)]
        _wait_ready(sync, writers, load.processes)
        (sync / "go").touch()
        go = time.time()
        wal_peak = _wait_writers(writers, load.seconds + 600, _wal_file(url))
        (sync / "stop").touch()
        for proc in readers:
            proc.wait(timeout=600)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outcome = Outcome(sink, load, load_average=_common.load_average())
    _collect_writers(outcome, writers, sync)
    outcome.readers = _dashboard_reads.collect(readers, sync)
    if outcome.writers:
        outcome.seconds = max(w["ended"] for w in outcome.writers) - go
    if sink == "registry":
        _account(outcome, url)
        outcome.wal_bytes = wal_peak
    return outcome


def _spawn(args: list[str], sync: Path, name: str, env: dict, procs: list) -> subprocess.Popen:
    # Output goes to files: a full pipe would block a child that warns a lot.
    with (sync / f"{name}.out").open("w") as out, (sync / f"{name}.err").open("w") as err:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args],
                                cwd=sync, env=env, stdout=out, stderr=err, text=True)
    procs.append(proc)
    proc.name = name
    return proc


def _wait_ready(sync: Path, writers: list[subprocess.Popen], n: int) -> None:
    """Until every writer has started its run (or exited): then all log at once."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready = sum((sync / f"ready-{i}").exists() for i in range(n))
        if ready + sum(p.poll() is not None for p in writers) >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the training processes did not all start within 600 s ({sync})")


def _wait_writers(writers: list[subprocess.Popen], timeout: float,
                  wal: Path | None) -> int | None:
    """Wait for the training processes; returns the largest size the SQLite WAL reached (a
    reader that never lets go of its snapshot stops checkpoints, and the WAL grows)."""
    deadline, peak = time.monotonic() + timeout, None
    while any(p.poll() is None for p in writers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training processes still running after {timeout:.0f} s")
        if wal is not None and wal.exists():
            peak = max(peak or 0, wal.stat().st_size)
        time.sleep(0.25)
    return peak


def _collect_writers(outcome: Outcome, writers: list[subprocess.Popen], sync: Path) -> None:
    for proc in writers:
        out = (sync / f"{proc.name}.out").read_text()
        err = (sync / f"{proc.name}.err").read_text()
        report = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        problems = [f"exit status {proc.returncode}"] if proc.returncode else []
        problems += [line for line in err.splitlines() if "locked" in line.lower()
                     or line.startswith("Traceback") or any(s in line for s in _LOST)]
        problems += report["errors"] if report else ["printed no report"]
        if report and report["status"] not in (None, "FINISHED"):
            problems.append(f"ended {report['status']}")
        if problems:
            outcome.failures.append(f"{proc.name}: " + "; ".join(problems[:5]))
        outcome.locked += "locked" in (err + json.dumps(report)).lower()
        outcome.retried += "cannot write metrics yet" in err
        if report:
            outcome.writers.append(report)


def _account(outcome: Outcome, url: str) -> None:
    """Count, run by run and key by key, what the store holds against what was logged."""
    from registry.store import SqlStore

    store = SqlStore(url, migrate=False)
    try:
        for w in outcome.writers:
            record = store.get_run(w["id"])
            history = store.metric_history(w["id"])
            outcome.statuses[w["id"]] = record.status
            for key, tried in w["logged"].items():
                steps = [p.step for p in history.get(key, [])]
                logged = range(0, w["steps"], VAL_EVERY if key in VAL_KEYS else 1)
                summary = record.metrics[key].count if key in record.metrics else None
                outcome.accounts.append(Account(w["id"], f"metric:{key}", tried, len(steps),
                                                steps == list(logged), summary))
            for item, stored in (("params", record.params), ("tags", record.tags)):
                expected = w[item]
                kept = sum(stored.get(k) == v for k, v in expected.items())
                outcome.accounts.append(Account(w["id"], item, len(expected), kept, True))
    finally:
        store.close()


def _wal_file(url: str | None) -> Path | None:
    from registry.store import sqlite_path

    database = sqlite_path(url) if url else None
    return Path(database + "-wal") if database else None


# -- the report --------------------------------------------------------------------------------


def _median_of(outcome: Outcome, what: Callable[[dict], float]) -> float:
    return median([what(w) for w in outcome.writers]) if outcome.writers else 0.0


def _rows(o: Outcome, anchor: Outcome | None) -> list[Row]:
    procs, metrics = o.load.processes, [a for a in o.accounts if a.item.startswith("metric:")]
    finished = sum(s == "FINISHED" for s in o.statuses.values())
    lost = sum(max(0, a.lost) for a in metrics)
    inexact = sum(not a.exact for a in metrics)
    summaries = sum(a.summary != a.stored for a in metrics)
    others = (o.total("tried", metrics=False), o.total("stored", metrics=False))
    rate = _median_of(o, lambda w: w["steps"] / w["loop_s"])
    cpu = _median_of(o, lambda w: w["cpu_s"])
    waits = [t for w in o.writers for t in w["sync_s"]]
    rows = [
        Row("training processes started / runs FINISHED in the store",
            f"{procs} / {finished}", target=str(procs), passed=finished == procs),
        Row("metric points logged (tried)", f"{o.total('tried'):,}"),
        Row("metric points stored (survived)", f"{o.total('stored'):,}"),
        Row("metric points lost", f"{lost:,}", target="0", passed=lost == 0),
        Row("histories not exactly as logged (a step missing or stored twice)",
            f"{inexact} of {len(metrics)}", target="0", passed=inexact == 0),
        Row("metric summaries whose count differs from the stored history",
            f"{summaries} of {len(metrics)}", target="0", passed=summaries == 0),
        Row("params + tags set / stored / lost", f"{others[0]:,} / {others[1]:,} / "
            f"{others[0] - others[1]:,}", target="0 lost", passed=others[0] == others[1]),
        Row('training scripts that saw "database is locked"', f"{o.locked} of {procs}",
            target="0", passed=o.locked == 0),
        Row("training scripts that saw any error (exit status, traceback, exception)",
            f"{len(o.failures)} of {procs}", target="0", passed=not o.failures),
        Row("scripts whose writer thread had a batch refused, kept and retried",
            f"{o.retried} of {procs}"),
        Row("durable write throughput, all processes (go to the last run ended)",
            fmt_rate(o.total("stored") / o.seconds if o.seconds else None)),
        Row("training steps/s per process, median (target rate "
            f"{o.load.step_rate or 'none'})", f"{rate:,.1f}",
            *_versus(anchor, lambda w: w["steps"] / w["loop_s"], rate, "{:,.1f}".format)),
        Row("CPU per process over the period (loop + writer thread + last flush)",
            fmt_time(cpu), *_versus(anchor, lambda w: w["cpu_s"], cpu, fmt_time)),
        Row("`log_param` / `set_tag` on the training thread (a synchronous write), median "
            "/ p99 / max", " / ".join(fmt_time(t) for t in (median(waits), percentile(
                waits, 99), max(waits))) + f" ({len(waits):,})" if waits else "—"),
        Row("store connections a training process holds (max over processes)",
            str(max((w["connections"] for w in o.writers), default=0))),
        Row("last flush + `end()` per process, median / max",
            f"{fmt_time(_median_of(o, lambda w: w['end_s']))} / "
            f"{fmt_time(max((w['end_s'] for w in o.writers), default=None))}"),
    ]
    if o.wal_bytes is not None:
        rows.append(Row("SQLite WAL file, largest size seen during the run",
                        f"{o.wal_bytes / 2**20:.1f} MiB"))
    rows.append(Row("load average (1, 5, 15 min) when the last process ended",
                    *(x.load_average.split(" (")[0] if x else "—" for x in (o, anchor))))
    return rows + _reader_rows(o)


def _versus(anchor: Outcome | None, what, value: float,
            fmt: Callable[[float], str]) -> tuple[str, str]:
    """(anchor cell, ratio cell): the figure beside the queue-appending loop's."""
    if anchor is None or not anchor.writers:
        return "—", "—"
    base = _median_of(anchor, what)
    return f"queue: {fmt(base)}", f"{value / base:.2g}x" if base else "—"


def _reader_rows(o: Outcome) -> list[Row]:
    done = sum(len(v) for r in o.readers for v in r["latencies"].values())
    failed = sum(r["failed"] for r in o.readers)
    rows = [Row(f"dashboard queries by {len(o.readers)} read-only readers: run / failed",
                f"{done:,} / {failed}", target="0 failed", passed=failed == 0)]
    names = dict.fromkeys(k for r in o.readers for k in r["latencies"])
    for name in names:
        times = [t for r in o.readers for t in r["latencies"].get(name, [])]
        if times:
            rows.append(Row(f"dashboard `{name}` latency, median / p95 (count)",
                            f"{fmt_time(median(times))} / {fmt_time(percentile(times, 95))} "
                            f"({len(times):,})"))
    return rows


def _print_failures(name: str, o: Outcome) -> None:
    lines = o.failures + [e for r in o.readers for e in r["errors"]]
    lines += [f"{a.run_id[:8]} {a.item}: tried {a.tried}, stored {a.stored}, exact {a.exact}"
              for a in o.accounts if a.lost or not a.exact]
    if lines:
        print(f"\n{name}: what went wrong (first 20 of {len(lines)}):")
        for line in lines[:20]:
            print("  " + line[:300])


# -- the command -------------------------------------------------------------------------------


def _parse(argv: list[str]) -> tuple[argparse.Namespace, Load]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, help="training processes (32; --quick: 8)")
    parser.add_argument("--seconds", type=float, help="logging period (60; --quick: 10)")
    parser.add_argument("--dialect", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="8 processes x 10 s")
    parser.add_argument("--step-rate", type=float, default=Load.step_rate,
                        help="steps per second per process (0: as fast as possible)")
    parser.add_argument("--flush-interval", type=float, default=Load.flush_interval)
    parser.add_argument("--readers", type=int, default=Load.readers)
    args = parser.parse_args(argv)
    load = Load(processes=args.processes or (8 if args.quick else Load.processes),
                seconds=args.seconds or (10.0 if args.quick else Load.seconds),
                step_rate=args.step_rate, flush_interval=args.flush_interval,
                readers=args.readers)
    return args, load


def _pg_server(url: str) -> str | None:
    """The server's version and connection limit, or None when nothing answers there."""
    from sqlalchemy import create_engine, text

    from registry.store import normalise_url

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            shown = [conn.execute(text(f"SHOW {name}")).scalar()
                     for name in ("server_version", "max_connections")]
        return f"{shown[0]}, max_connections {shown[1]}"
    except Exception:  # no server there: the PostgreSQL rows are left out, not the benchmark
        return None
    finally:
        engine.dispose()


def bench(args: argparse.Namespace, load: Load) -> int:
    """Run the anchor, then the load on each dialect; print the tables; 1 if anything lost."""
    print(f"Cairn load benchmark (issue 9): {load.processes} training processes x "
          f"{load.seconds:g} s, {load.step_rate:g} steps/s each, flush every "
          f"{load.flush_interval:g} s, {load.readers} dashboard readers")
    facts = _common.machine_facts(PACKAGES)
    pg_url = os.environ.get("CAIRN_BENCH_POSTGRES_URL", DEFAULT_PG)
    if args.dialect in ("postgresql", "both"):
        server = _pg_server(pg_url)
        facts.append(("PostgreSQL", server or f"unreachable at {pg_url}: its rows are skipped"))
        pg_url = pg_url if server else None
    _common.print_facts(facts)
    started, outcomes, step = time.perf_counter(), {}, _common.step
    with tempfile.TemporaryDirectory(prefix="cairn-load-") as tmp:
        work = Path(tmp)
        anchor = step("anchor: the same processes and loop, appending to a queue",
                      lambda: run_load(None, load, work, sink="list"))
        if args.dialect in ("sqlite", "both"):
            url = f"sqlite:///{work / 'store' / 'registry.db'}"
            outcomes["SQLite"] = step("SQLite", lambda: run_load(url, load, work))
        if pg_url and args.dialect in ("postgresql", "both"):
            with _common.postgres_schema(pg_url) as url:
                outcomes["PostgreSQL"] = step("PostgreSQL", lambda: run_load(url, load, work))
    for name, outcome in outcomes.items():
        _common.print_table(_rows(outcome, anchor), f"{name}: {load.processes} processes x "
                            f"{load.seconds:g} s (ratio: Cairn / the anchor appending to a queue)")
        _print_failures(name, outcome)
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s; "
          f"load average now {_common.load_average()}")
    return 0 if all(o.ok for o in outcomes.values()) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["writer"]:
        writer_main(int(argv[1]), argv[2], Path(argv[3]), float(argv[4]), float(argv[5]))
    elif argv[:1] == ["reader"]:
        _dashboard_reads.reader_main(argv[1], Path(argv[2]))
    else:
        return bench(*_parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
