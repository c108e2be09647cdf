"""MLflow bridge benchmark (issue 7): export N registry runs with full metric histories into
a local MLflow SQLite store, then again (nothing changed), then after some runs grew.

    .venv/bin/python benchmarks/bench_mlflow.py                 # 1,000 runs x 1,000 points
    .venv/bin/python benchmarks/bench_mlflow.py --runs 100      # a shorter run

Runs are generated into a fresh registry SQLite store with the lossless import
(``registry.transfer.backup.import_runs``): 10 params, 3 tags, one DVC data version and ``--keys``
metrics whose histories add up to ``--points`` points per run. The anchor is the same runs
logged straight into a fresh MLflow store with ``MlflowClient`` (``create_run`` with the tags,
``log_batch`` of params and metrics, ``set_terminated``), measured on the first
``--anchor-runs`` runs: the floor any exporter through MLflow's client pays. Figures are
printed, never asserted; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from _common import (
    Row,
    fmt_time,
    load_average,
    machine_facts,
    print_facts,
    print_table,
    quiet_mlflow,
    step,
)

PACKAGES = ("cairn", "mlflow", "sqlalchemy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--points", type=int, default=1_000, help="metric points per run")
    parser.add_argument("--keys", type=int, default=4, help="metrics per run")
    parser.add_argument("--anchor-runs", type=int, default=100)
    parser.add_argument("--grown", type=int, default=10, help="runs that gain 100 points")
    args = parser.parse_args(argv)
    quiet_mlflow()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(f"Cairn MLflow bridge benchmark (issue 7): {args.runs:,} runs x {args.points:,} "
          f"points ({args.keys} metrics)")
    print_facts(machine_facts(PACKAGES))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-mlflow-") as tmp:
        rows = run_all(Path(tmp), args)
    print_table(rows, "Results (ratio = anchor time / bridge time per run)")
    print(f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s; "
          f"load average now {load_average()}")
    return 0


def run_all(tmp: Path, args) -> list[Row]:
    from registry.artifacts import ArtifactStore
    from registry.store import open_store
    from registry.transfer.mlflow.export import Exporter

    store = open_store(f"sqlite:///{tmp / 'registry.db'}")
    records = step(f"generating {args.runs:,} registry runs",
                   lambda: generate(store, args.runs, args.points, args.keys))
    pks = step("listing them", lambda: _pks(store))
    uri = f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}"
    exporter = step("opening the MLflow store (migrations, untimed)",
                    lambda: _exporter(Exporter, store, ArtifactStore(str(tmp / "a")), uri))
    first = step("first export", lambda: _timed(lambda: exporter.export(pks)))
    again = step("export again, nothing changed", lambda: _timed(lambda: exporter.export(pks)))
    grow(store, pks[:args.grown])
    grown = step(f"export after {args.grown} runs gained 100 points",
                 lambda: _timed(lambda: exporter.export(pks)))
    anchor = step(f"anchor: MlflowClient logging {args.anchor_runs} runs directly",
                  lambda: mlflow_anchor(tmp, records[:args.anchor_runs]))
    (result, seconds), points = first, args.runs * args.points
    assert len(result.created) == args.runs and not result.failed, result.failed
    assert len(again[0].unchanged) == args.runs and len(grown[0].updated) == args.grown
    per_run, anchor_per_run = seconds / args.runs, anchor / args.anchor_runs
    return [
        Row(f"export {args.runs:,} runs x {args.points:,} points", fmt_time(seconds),
            fmt_time(anchor_per_run * args.runs) + " (extrapolated)",
            f"{anchor_per_run / per_run:.2f}x"),
        Row("runs/s", f"{args.runs / seconds:,.1f}", f"{1 / anchor_per_run:,.1f}"),
        Row("points/s", f"{points / seconds:,.0f}", f"{args.points / anchor_per_run:,.0f}"),
        Row(f"re-export, {args.runs:,} unchanged", fmt_time(again[1])),
        Row(f"re-export, {args.grown} runs grew by 100 points", fmt_time(grown[1])),
    ]


def _exporter(cls, store, blobs, uri):
    exporter = cls(store, blobs, uri, models=False)
    exporter.check()
    return exporter


def _timed(call):
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


def _pks(store) -> list[int]:
    return list(reversed(store.run_keys(limit=10**12)))


def generate(store, runs: int, points: int, keys: int) -> list[dict]:
    """Synthetic finished runs, imported losslessly (seeded)."""
    from registry.transfer.backup import FORMAT, import_runs

    rng, now, records = random.Random(0), time.time() - 86_400, []
    steps = points // keys
    for i in range(runs):
        start = now + i * 60
        metrics = {f"m{k}": {"step": list(range(steps)),
                             "value": [rng.random() for _ in range(steps)],
                             "time": [start + s * 0.5 for s in range(steps)]}
                   for k in range(keys)}
        records.append({
            "format": FORMAT, "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "project": f"p{i % 4}", "name": f"run-{i}", "owner": "bench",
            "status": "FINISHED", "start_time": start, "end_time": start + steps,
            "code": {"state": "git", "commit": f"{i:040x}", "branch": "main"},
            "params": {f"p{j}": {"type": "float", "text": repr(rng.random())}
                       for j in range(10)},
            "tags": {"team": "vision", "task": "defects", "seed": str(i)},
            "metrics": metrics,
            "datasets": [{"path": "data/train", "role": "train", "tracked": True,
                          "hash": f"{i % 20:032x}.dir", "hash_kind": "md5"}]})
    result = import_runs(store, [json.dumps(r) for r in records])
    assert len(result.imported) == runs, result.errors[:3]
    return records


def grow(store, pks: list[int]) -> None:
    """Append 100 points to one metric of each run, as a resumed training would."""
    from registry._history import Summary

    for pk in pks:
        history = store.metric_history(pk, ["m0"])["m0"]
        steps = [history[-1].step + 1 + s for s in range(100)]
        values, times = [0.5] * 100, [history[-1].time + 1 + s for s in range(100)]
        summary = Summary()
        summary.add([p.step for p in history] + steps, [p.value for p in history] + values,
                    [p.time for p in history] + times)
        store.log_metrics(pk, [("m0", 1, steps, values, times)], [summary.freeze("m0")])


def mlflow_anchor(tmp: Path, records: list[dict]) -> float:
    """Seconds MLflow's own client takes to log the same runs into a fresh store."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{tmp / 'anchor' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiments = {p: client.create_experiment(p, artifact_location=str(tmp / "anchor" / p))
                   for p in sorted({r["project"] for r in records})}
    began = time.perf_counter()
    for r in records:
        run = client.create_run(experiments[r["project"]], start_time=int(r["start_time"] * 1000),
                                tags={**r["tags"], "mlflow.user": r["owner"]},
                                run_name=r["name"])
        metrics = [Metric(key, v, int(t * 1000), s) for key, m in r["metrics"].items()
                   for s, v, t in zip(m["step"], m["value"], m["time"], strict=True)]
        params = [Param(k, p["text"]) for k, p in r["params"].items()]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000],
                             params=params if start == 0 else [], synchronous=True)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=int(r["end_time"] * 1000))
    return time.perf_counter() - began


if __name__ == "__main__":
    raise SystemExit(main())
