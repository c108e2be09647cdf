"""Fill a registry store with N synthetic but realistic runs, fast, the same for a seed.

    .venv/bin/python benchmarks/generate.py sqlite:///.cairn/bench/runs.db 100000
    .venv/bin/python benchmarks/generate.py postgresql+psycopg://host/db 20000 --seed 1

Six owners train image classifiers in four projects on three to five DVC versions of each
project's data (md5 ``.dir`` hashes, shared between runs), with five model families, 30 params
(nested optimizer / model / augment / scheduler / train keys, learning rates on log-scale
grids, text such as the optimizer's name or the augmentation policy), 10 metrics with their
histories (``history_points`` each, stored as chunks by ``registry._history.encode``) and
summaries, tags, questions, notes and conclusions in words (so free text such as "mixup"
matches a fraction of the runs), statuses (failed runs stop early, some with NaN losses),
about 3% exact re-runs of an earlier config, and start times 315 s apart (100,000 runs span a
year). Fingerprints, group keys, model families and data keys are computed as ``start_run``
computes them (``registry._fingerprint``, ``registry.store.groups``).

Runs come from one random stream, in order, and nothing depends on N: the first 10,000 runs of
a 100,000-run store are the runs of a 10,000-run store, and ``synthetic_runs`` yields the same
runs to log into another system (the benchmark logs them into MLflow). Rows go in with
SQLAlchemy Core executemany, one transaction per batch of 1,000 runs, the free-text index
refreshed per batch. About 1% of the runs are left RUNNING with a stopped heartbeat, so search
sees them as crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _synthetic import (
    BATCH,
    ENTRY_POINT,
    GENERATOR_VERSION,
    GPUS,
    PROJECTS,
    SyntheticRun,
    dataset_versions,
    synthetic_runs,
)

from registry._fingerprint import data_key, fingerprint, model_family
from registry._history import encode
from registry._params import ParamValue, typed_value
from registry.entities import encode_value
from registry.store.groups import Keying

__all__ = ["GENERATOR_VERSION", "SyntheticRun", "cached_sqlite", "dataset_versions", "generate",
           "schema_digest", "synthetic_runs"]

# -- into a Cairn store -----------------------------------------------------------------------


def generate(store_url: str, n: int, *, seed: int = 0, history_points: int = 100,
             progress: Callable[[str], None] | None = None) -> None:
    """Fill an empty store at ``store_url`` with the first ``n`` runs for ``seed``; progress
    lines go to ``progress`` (default: printed).

    A child process makes the runs and their rows while this one inserts them, so making
    and inserting overlap on two cores."""
    from sqlalchemy import func, select

    from registry.store import SqlStore
    from registry.store.schema import run as run_table

    progress = progress or _say
    store = SqlStore(store_url)  # creates the schema
    try:
        with store.writing() as conn:
            if conn.execute(select(func.count()).select_from(run_table)).scalar():
                raise ValueError(f"{store_url} already holds runs; generate into an empty store")
            projects, datasets = _reference_rows(conn)
        began, done = time.perf_counter(), 0
        for rows in _produced(n, seed, history_points, projects, datasets):
            with store.writing() as conn:
                _insert_rows(conn, rows)
            done += len(rows["run"])
            if done % 10_000 == 0 or done == n:
                rate = done / (time.perf_counter() - began)
                progress(f"    {done:,} / {n:,} runs ({rate:,.0f} runs/s)")
        with store.writing() as conn:
            _after_bulk(conn)
    finally:
        store.close()


def _produced(n: int, seed: int, history_points: int, projects: dict[str, int],
              datasets: dict[str, int]) -> Iterator[dict[str, list[dict]]]:
    """The rows of each batch of runs, made by a child process a few batches ahead."""
    context = multiprocessing.get_context("fork")
    batches = context.Queue(maxsize=4)
    child = context.Process(target=_produce, name="cairn-generate", daemon=True,
                            args=(batches, n, seed, history_points, projects, datasets))
    child.start()
    try:
        while True:
            try:
                rows = batches.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the generating process died (exit code "
                                       f"{child.exitcode})") from None
                continue
            if rows is None:
                return
            yield rows
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


def _produce(batches, n: int, seed: int, history_points: int, projects: dict[str, int],
             datasets: dict[str, int]) -> None:
    batch: list[SyntheticRun] = []
    for run in synthetic_runs(n, seed=seed, history_points=history_points):
        batch.append(run)
        if len(batch) == BATCH or run.index == n - 1:
            rows: dict[str, list[dict]] = {name: [] for name in _TABLES}
            for r in batch:
                _rows_of(r, projects, datasets, rows)
            batches.put(rows)
            batch = []
    batches.put(None)


def _say(line: str) -> None:
    print(line, flush=True)


def _reference_rows(conn) -> tuple[dict[str, int], dict[str, int]]:
    """Projects and dataset versions, inserted once: name -> id, hash -> id."""
    from sqlalchemy import insert, select

    from registry.store import _writes
    from registry.store.schema import dataset, project

    projects = {name: _writes.ensure_project(conn, name) for name in PROJECTS}
    for name, (description, *_rest) in PROJECTS.items():
        conn.execute(project.update().where(project.c.id == projects[name])
                     .values(description=description))
    rows = []
    for name, (_, _, _, images) in PROJECTS.items():
        for role, hashes in dataset_versions(name).items():
            share = 0.85 if role == "train" else 0.15
            for v, md5 in enumerate(hashes):
                files = int(images * share * (1 + 0.08 * v))
                rows.append({"path": f"data/{role}", "hash": md5, "hash_kind": "md5",
                             "size": files * 118_000, "nfiles": files,
                             "remote": f"s3://acme-dvc/{name}", "source": "dvc"})
    conn.execute(insert(dataset), rows)
    ids = dict(conn.execute(select(dataset.c.hash, dataset.c.id)).all())
    return projects, ids


_TABLES = ("run", "param", "tag", "run_dataset", "metric_summary", "metric_chunk")


def _insert_rows(conn, rows: dict[str, list[dict]]) -> None:
    """One batch: executemany per table (parents first), then the runs' free-text entries."""
    from sqlalchemy import insert

    from registry.store import textindex
    from registry.store.schema import metadata

    for name in _TABLES:
        conn.execute(insert(metadata.tables[name]), rows[name])
    textindex.refresh(conn, [r["pk"] for r in rows["run"]])


def _rows_of(r: SyntheticRun, projects: dict[str, int], datasets: dict[str, int],
             rows: dict[str, list[dict]]) -> None:
    pk = r.index + 1
    typed = {k: _typed(k, v) for k, v in r.params.items()}
    code = {"commit": r.commit, "diff_sha256": r.diff_sha256, "entry_point": ENTRY_POINT}
    triples = [(role, md5, path) for role, path, md5 in r.data]
    rows["run"].append(_run_row(r, pk, projects[r.project], typed, code, triples))
    rows["param"].extend({"run_pk": pk, "key": k, "vtype": v.vtype, "value_text": v.text,
                          "value_num": v.number} for k, v in typed.items())
    rows["tag"].extend({"run_pk": pk, "key": k, "value": v} for k, v in r.tags.items())
    rows["run_dataset"].extend(
        {"run_pk": pk, "dataset_id": datasets[md5], "role": role, "tracked": True,
         "dirty": False, "dirty_check": "stat-cache"} for role, _, md5 in r.data)
    for key, (steps, values, times) in r.history.items():
        rows["metric_summary"].append(_summary_row(pk, key, steps, values, times))
        packed_steps, packed_values, packed_times = encode(steps, values, times)
        rows["metric_chunk"].append({
            "run_pk": pk, "key": key, "seq": 0, "count": len(steps), "min_step": steps[0],
            "max_step": steps[-1], "steps": packed_steps, "values": packed_values,
            "times": packed_times})


_TYPED: dict[tuple[str, type, Any], ParamValue] = {}
_KEYING = Keying()  # the default seed params (``train.seed``), as start_run keys runs


def _typed(key: str, value: Any) -> ParamValue:
    """``typed_value``, memoised: most values come from small grids."""
    if isinstance(value, list):
        return typed_value(key, value)[0]
    memo = (key, type(value), value)
    found = _TYPED.get(memo)
    if found is None:
        found = _TYPED[memo] = typed_value(key, value)[0]
    return found


def _run_row(r: SyntheticRun, pk: int, project_id: int, typed: dict[str, ParamValue],
             code: dict[str, Any], data: list[tuple[str, str, str]]) -> dict[str, Any]:
    remote = f"git@github.com:acme/{r.project}.git"
    branch = "main" if r.params["train.seed"] % 3 else f"{r.owner}/{r.params['augment.policy']}"
    root = f"/home/{r.owner}/src/{r.project}"
    return {
        "pk": pk, "id": r.id, "project_id": project_id, "name": r.name, "owner": r.owner,
        "status": r.status, "start_time": r.start_time, "end_time": r.end_time,
        "heartbeat_time": r.end_time or r.start_time + 600, "heartbeat_interval": 30.0,
        "question": r.question, "notes": r.notes, "conclusion": r.conclusion,
        "failure": r.failure,
        # As start_run computes them (registry/tracking.py, registry.knowledge.similarity.RunSpec).
        "fingerprint": fingerprint(code, typed, data),
        "model_family": model_family({k: p.value() for k, p in typed.items()
                                      if p.vtype == "str"}),
        "data_key": data_key(h for _, h, _ in data),
        "group_key": _KEYING.key(code, typed, data),
        "code_state": "git", "git_commit": r.commit, "git_branch": branch, "git_remote": remote,
        "git_dirty": r.dirty, "git_diff_sha256": r.diff_sha256,
        "command": f"python {ENTRY_POINT} --config configs/{r.params['model.arch']}.yaml",
        "entry_point": f"{root}/{ENTRY_POINT}", "cwd": root, "hostname": r.host,
        "hardware": {"hostname": r.host, "machine": "x86_64",
                     "cpu": {"model": "AMD EPYC 7763 64-Core Processor", "logical_cores": 32,
                             "physical_cores": 16, "available_cores": 32},
                     "ram_bytes": 270_000_000_000,
                     "gpus": [{"index": 0, "name": GPUS[r.gpu], "memory_total": 85_899_345_920}],
                     "cuda_driver_version": "12.4", "container": {}},
        "environment": {"python": "3.11.9", "implementation": "CPython", "os": "Linux",
                        "packages": {"torch": "2.4.1", "timm": "1.0.9", "numpy": "1.26.4"}},
        "code": {"state": "git", "commit": r.commit, "branch": branch, "detached": False,
                 "remote": remote, "dirty": r.dirty, "untracked": [], "root": root},
        "warnings": [], "mlflow_run_id": None,
    }


def _summary_row(pk: int, key: str, steps: list[int], values: list[float],
                 times: list[float]) -> dict[str, Any]:
    finite = values if math.isfinite(sum(values)) else [v for v in values if math.isfinite(v)]
    last, last_nonfinite = encode_value(values[-1])
    return {"run_pk": pk, "key": key, "last": last, "last_nonfinite": last_nonfinite,
            "last_step": steps[-1], "last_time": times[-1],
            "min": min(finite) if finite else None, "max": max(finite) if finite else None,
            "count": len(values), "nonfinite_count": len(values) - len(finite)}


def _after_bulk(conn) -> None:
    """PostgreSQL: move the run key's sequence past the explicit keys, and ANALYZE, as
    autovacuum would after a bulk load. SQLite gets no ANALYZE: Cairn never runs it, so a
    real store has no statistics either."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT setval(pg_get_serial_sequence('run', 'pk'), "
                          "(SELECT max(pk) FROM run))"))
        conn.execute(text("ANALYZE"))


# -- a cached SQLite store ---------------------------------------------------------------------


def cached_sqlite(folder: Path, n: int, *, seed: int = 0, history_points: int = 100,
                  progress: Callable[[str], None] | None = None) -> tuple[str, bool]:
    """(URL, reused?) of a SQLite store with the first ``n`` runs, built once per version of
    this generator and of the migrations; a half-built file is never reused."""
    name = f"cairn-n{n}-s{seed}-h{history_points}-g{GENERATOR_VERSION}-m{schema_digest()}.db"
    path = Path(folder) / name
    if path.exists():
        return f"sqlite:///{path}", True
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    generate(f"sqlite:///{partial}", n, seed=seed, history_points=history_points,
             progress=progress)
    os.replace(partial, path)  # the engine is closed: the WAL was checkpointed and removed
    return f"sqlite:///{path}", False


def schema_digest() -> str:
    """A digest of the migration scripts: a cached store is rebuilt whenever they change,
    even when a revision is edited in place."""
    import registry.store

    versions = Path(registry.store.__file__).with_name("migrations") / "versions"
    digest = hashlib.sha256()
    for script in sorted(versions.glob("*.py")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return digest.hexdigest()[:10]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_url", help="an empty store: sqlite:///path.db or postgresql://...")
    parser.add_argument("n", type=int, help="how many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-points", type=int, default=100,
                        help="points per metric history (default 100)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    generate(args.store_url, args.n, seed=args.seed, history_points=args.history_points)
    print(f"{args.n:,} runs in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
