"""Registry core benchmark (issue 2): import, start_run with capture, log_metric, throughput.

    .venv/bin/python benchmarks/bench_registry.py            # about 1 to 2 minutes
    .venv/bin/python benchmarks/bench_registry.py --quick    # fewer repetitions
    CAIRN_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python benchmarks/bench_registry.py        # adds PostgreSQL throughput

Each Cairn figure is printed beside an anchor measured in the same run (MLflow, DVC), as a
median, with the ratio and the issue's target. Nothing here asserts on a timing: a missed
target is printed as FAIL and the script still exits 0. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Row,
    dvc_command,
    fmt_rate,
    fmt_time,
    load_average,
    machine_facts,
    make_dvc_repo,
    median,
    percentile,
    postgres_schema,
    postgres_version,
    print_facts,
    print_table,
    quiet_mlflow,
    step,
    subprocess_seconds,
)

PACKAGES = ("cairn", "sqlalchemy", "mlflow", "dvc", "alembic", "psycopg")
PG_ENV = ("CAIRN_BENCH_POSTGRES_URL", "CAIRN_TEST_POSTGRES_URL")
DATA = "data/train"
HEAVY = ("sqlalchemy", "alembic", "dvc", "yaml", "mlflow", "torch")  # must load lazily
PARAMS = {f"p{i:02d}": (i * 0.1 if i % 2 else f"value-{i}") for i in range(20)}  # 20 params

IMPORT_TARGET_S = 0.3
START_TARGET_S = 0.050
LOG_TARGET_S = 10e-6
THROUGHPUT_TARGET = 200_000


@dataclass(frozen=True)
class Plan:
    """How many repetitions each measurement takes."""

    import_reps: int = 7
    start_warmups: int = 2
    start_reps: int = 30
    cold_process_reps: int = 3
    log_batches: int = 200
    log_batch_size: int = 1_000
    mlflow_calls: int = 300
    throughput_keys: int = 5
    throughput_steps: int = 100_000
    throughput_reps: int = 3
    mlflow_batches: int = 20
    nfiles: int = 1_000
    file_size: int = 1_024

    @classmethod
    def quick(cls) -> Plan:
        return cls(import_reps=3, start_reps=10, cold_process_reps=1, log_batches=50,
                   mlflow_calls=100, throughput_reps=1, mlflow_batches=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    pg_url = next((os.environ[v] for v in PG_ENV if os.environ.get(v)), None)

    print("Cairn registry core benchmark (issue 2)" + (" --quick" if args.quick else ""))
    facts = machine_facts(PACKAGES)
    if pg_url:
        version = postgres_version(pg_url)
        facts.append(("PostgreSQL", version or "unreachable; its throughput is not measured"))
        pg_url = pg_url if version else None
    print_facts(facts)

    started, home = time.perf_counter(), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        try:
            rows = _run_all(Path(tmp), plan, pg_url)
        finally:
            os.chdir(home)
    print_table(rows, "Results (medians; ratio = how many times better Cairn is than the anchor)")
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s; "
          f"load average now {load_average()}")
    return 0


def _run_all(tmp: Path, plan: Plan, pg_url: str | None) -> list[Row]:
    """Cairn first, MLflow last: importing MLflow must not slow the Cairn figures down."""
    imports = step("import times", lambda: bench_imports(plan, tmp))
    start = step("start_run in a DVC repository", lambda: bench_start_run(plan, tmp))
    log_call = step("log_metric per call", lambda: bench_log_metric(plan, tmp))
    rate = step("throughput into SQLite",
                 lambda: bench_throughput(plan, tmp, lambda i: _sqlite_url(tmp, f"tp{i}")))
    pg_rate = None
    if pg_url:
        pg_rate = step("throughput into PostgreSQL",
                        lambda: bench_pg_throughput(plan, tmp, pg_url))
    mlflow = step("MLflow anchors", lambda: bench_mlflow(plan, tmp))
    return _rows(imports, start, log_call, rate, pg_rate, mlflow, plan)


def _sqlite_url(tmp: Path, name: str) -> str:
    return f"sqlite:///{tmp / 'stores' / name / 'registry.db'}"


def _workspace(root: Path, store_url: str, tmp: Path):
    from registry.config import Workspace

    return Workspace(root=root, store_url=store_url, artifact_root=str(tmp / "artifacts"),
                     catalog_dir=root / "catalog", owner="bench")


# -- 1. import time ---------------------------------------------------------------------------


def bench_imports(plan: Plan, tmp: Path) -> dict:
    """Fresh interpreters, interleaved so drift hits every command alike; one warm-up each."""
    commands = {"pass": "pass", "registry": "import registry", "mlflow": "import mlflow"}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for rep in range(plan.import_reps + 1):
        for key, code in commands.items():
            seconds = subprocess_seconds([sys.executable, "-c", code], cwd=tmp)
            if rep:  # rep 0 warms the page cache
                times[key].append(seconds)
    probe = f"import registry, sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    heavy = subprocess.run([sys.executable, "-c", probe], cwd=tmp, capture_output=True,
                           text=True, check=True).stdout.split()
    base = median(times["pass"])
    return {"interpreter": base, "registry": median(times["registry"]) - base,
            "mlflow": median(times["mlflow"]) - base, "heavy_modules": heavy}


# -- 2. start_run with full capture -------------------------------------------------------------


def bench_start_run(plan: Plan, tmp: Path) -> dict:
    import registry

    repo = make_dvc_repo(tmp / "repo", nfiles=plan.nfiles, file_size=plan.file_size)
    dvc_status = subprocess_seconds([*dvc_command(), "data", "status"], cwd=repo)
    ws = _workspace(repo, _sqlite_url(tmp, "start"), tmp)
    os.chdir(repo)
    starts, totals, uses = [], [], []
    for i in range(plan.start_warmups + plan.start_reps):
        t0 = time.perf_counter()
        run = registry.start_run(project="bench", name=f"start-{i}", params=PARAMS, workspace=ws)
        t1 = time.perf_counter()
        use = run.use_data(DATA, role="train")
        t2 = time.perf_counter()
        run.end()
        starts.append(t1 - t0)
        uses.append(t2 - t1)
        totals.append(t2 - t0)
        if use.dirty is not False or run.warnings:
            print(f"\n    note: run {i}: dirty={use.dirty} warnings={run.warnings}", end="")
    skip = plan.start_warmups
    return {
        "total": median(totals[skip:]), "start": median(starts[skip:]),
        "use": median(uses[skip:]), "first_use": uses[0],
        "cold_process": _cold_process(plan, repo, ws.store_url, tmp), "dvc_status": dvc_status,
        "dirty_check": use.dirty_check,
    }


_COLD_SCRIPT = """
import json, time
from pathlib import Path
t0 = time.perf_counter()
import registry
from registry.config import Workspace
t1 = time.perf_counter()
ws = Workspace(root=Path(%(root)r), store_url=%(store)r, artifact_root=%(art)r,
               catalog_dir=Path(%(root)r, "catalog"), owner="bench")
run = registry.start_run(project="bench", name="cold", params=%(params)r, workspace=ws)
run.use_data(%(data)r, role="train")
t2 = time.perf_counter()
run.end()
print(json.dumps({"import": t1 - t0, "start_use": t2 - t1}))
"""


def _cold_process(plan: Plan, repo: Path, store_url: str, tmp: Path) -> dict:
    """The first run of a fresh process: imports, capture caches and engine all cold."""
    code = _COLD_SCRIPT % {"root": str(repo), "store": store_url, "art": str(tmp / "artifacts"),
                           "params": PARAMS, "data": DATA}
    results = []
    for _ in range(plan.cold_process_reps):
        out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                             text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {k: median([r[k] for r in results]) for k in ("import", "start_use")}


# -- 3. log_metric on the training thread -----------------------------------------------------


def bench_log_metric(plan: Plan, tmp: Path) -> dict:
    import registry

    ws = _workspace(tmp / "repo", _sqlite_url(tmp, "log"), tmp)
    per_call = []
    with registry.start_run(project="bench", name="log", params=PARAMS, workspace=ws) as run:
        log, size = run.log_metric, plan.log_batch_size
        for batch in range(plan.log_batches + 1):
            first = batch * size
            t0 = time.perf_counter_ns()
            for step in range(first, first + size):
                log("loss", 0.5, step)
            elapsed = time.perf_counter_ns() - t0
            if batch:  # batch 0 warms up
                per_call.append(elapsed / size * 1e-9)
        run.flush()
    return {"median": median(per_call), "p95": percentile(per_call, 95),
            "calls": plan.log_batches * size}


# -- 4. durable throughput --------------------------------------------------------------------


def bench_throughput(plan: Plan, tmp: Path, url_for) -> dict:
    """N points logged as fast as a loop can, then flush(): N / (first log to flush return)."""
    import registry

    keys = [f"metric_{k}" for k in range(plan.throughput_keys)]
    n = len(keys) * plan.throughput_steps
    rates, flush_waits = [], []
    for rep in range(plan.throughput_reps):
        ws = _workspace(tmp / "repo", url_for(rep), tmp)
        with registry.start_run(project="bench", name=f"tp-{rep}", workspace=ws) as run:
            log = run.log_metric
            t0 = time.perf_counter()
            for step in range(plan.throughput_steps):
                value = step * 1e-3
                for key in keys:
                    log(key, value, step)
            t1 = time.perf_counter()
            durable = run.flush()
            t2 = time.perf_counter()
            written = run._writer.written  # a sanity check, outside the timed region
        if not durable or written != n:
            print(f"\n    WARNING: flush returned {durable}; {written:,} of {n:,} points written",
                  end="")
        rates.append(n / (t2 - t0))
        flush_waits.append(t2 - t1)
    return {"rate": median(rates), "n": n, "flush_wait": median(flush_waits),
            "rates": rates}


def bench_pg_throughput(plan: Plan, tmp: Path, base_url: str) -> dict:
    from registry.store import open_store

    one = dataclasses.replace(plan, throughput_reps=1)
    results = []
    for _ in range(plan.throughput_reps):
        with postgres_schema(base_url) as url:
            results.append(bench_throughput(one, tmp, lambda _rep, url=url: url))
            open_store(url).close()  # release the pool before the schema is dropped
    return {"rate": median([r["rate"] for r in results]), "n": results[0]["n"],
            "flush_wait": median([r["flush_wait"] for r in results])}



# -- MLflow anchors ---------------------------------------------------------------------------


def bench_mlflow(plan: Plan, tmp: Path) -> dict:
    """Synchronous MLflow client on a SQLite tracking store: per-call log_metric, log_batch."""
    quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    folder = tmp / "mlflow"
    folder.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in PARAMS.items()])
    per_call = []
    for i in range(plan.mlflow_calls + 5):
        t0 = time.perf_counter_ns()
        client.log_metric(run_id, "loss", 0.5, step=i)
        if i >= 5:  # five warm-ups
            per_call.append((time.perf_counter_ns() - t0) * 1e-9)
    batch_run = client.create_run(experiment).info.run_id
    batch_seconds = []
    for b in range(plan.mlflow_batches + 1):
        now = int(time.time() * 1000)
        metrics = [Metric(f"metric_{k}", s * 1e-3, now, b * 200 + s)
                   for s in range(200) for k in range(5)]
        t0 = time.perf_counter()
        client.log_batch(batch_run, metrics=metrics)
        if b:
            batch_seconds.append(time.perf_counter() - t0)
    return {"log_metric": median(per_call), "batch_rate": 1_000 / median(batch_seconds)}


# -- the table --------------------------------------------------------------------------------


def _ratio(anchor: float, cairn: float, better: str = "faster") -> str:
    ratio = anchor / cairn
    return f"{ratio:,.0f}x {better}" if ratio >= 10 else f"{ratio:.2g}x {better}"


def _rows(imports, start, log_call, rate, pg_rate, mlflow, plan: Plan) -> list[Row]:
    files = f"{plan.nfiles:,} files"
    rows = [
        Row("`import registry` (fresh process, minus bare interpreter)",
            fmt_time(imports["registry"]), f"`import mlflow` {fmt_time(imports['mlflow'])}",
            _ratio(imports["mlflow"], imports["registry"]), f"< {fmt_time(IMPORT_TARGET_S)}",
            imports["registry"] < IMPORT_TARGET_S),
        Row(f"heavy modules loaded by `import registry` (of {', '.join(HEAVY)})",
            ", ".join(imports["heavy_modules"]) or "none"),
        Row(f"`start_run` + `use_data` ({files}, warm)", fmt_time(start["total"]),
            f"`dvc data status` {fmt_time(start['dvc_status'])}",
            _ratio(start["dvc_status"], start["total"]), f"< {fmt_time(START_TARGET_S)}",
            start["total"] < START_TARGET_S),
        Row("`start_run` alone (20 params, git + hardware + env capture)",
            fmt_time(start["start"])),
        Row(f"`use_data` alone (stat-cache check: {start['dirty_check']})",
            fmt_time(start["use"])),
        Row(f"first `use_data` of the workspace (empty stat cache, hashes {files})",
            fmt_time(start["first_use"])),
        Row("first `start_run` + `use_data` of a fresh process (after `import registry`)",
            fmt_time(start["cold_process"]["start_use"])),
        Row("`log_metric` per call (training thread, 20 params logged)",
            fmt_time(log_call["median"]), f"MLflow `log_metric` {fmt_time(mlflow['log_metric'])}",
            _ratio(mlflow["log_metric"], log_call["median"]), f"< {fmt_time(LOG_TARGET_S)}",
            log_call["median"] < LOG_TARGET_S),
        Row("`log_metric` per call, 95th percentile of batches", fmt_time(log_call["p95"])),
        Row(f"durable throughput, SQLite ({rate['n']:,} points, log + flush)",
            fmt_rate(rate["rate"]), f"MLflow `log_batch` of 1,000 {fmt_rate(mlflow['batch_rate'])}",
            _ratio(rate["rate"], mlflow["batch_rate"], "higher"),
            f"≥ {THROUGHPUT_TARGET:,}/s", rate["rate"] >= THROUGHPUT_TARGET),
        Row("wait in `flush()` after the last SQLite log call", fmt_time(rate["flush_wait"])),
    ]
    if pg_rate:
        rows.append(Row(f"durable throughput, PostgreSQL ({pg_rate['n']:,} points)",
                        fmt_rate(pg_rate["rate"]),
                        anchor=f"MLflow `log_batch` (SQLite) {fmt_rate(mlflow['batch_rate'])}",
                        ratio=_ratio(pg_rate["rate"], mlflow["batch_rate"], "higher")))
    return rows


if __name__ == "__main__":
    sys.exit(main())
