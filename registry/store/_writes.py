"""Write operations; each takes a connection inside a transaction the store opened."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from registry._history import Chunk, encode
from registry._params import ParamValue
from registry.entities import DatasetUse, MetricSummary, encode_value
from registry.store.schema import (
    artifact,
    dataset,
    metric_chunk,
    metric_summary,
    param,
    project,
    run,
    run_dataset,
    tag,
)

__all__ = [
    "add_artifact",
    "add_dataset_use",
    "ensure_project",
    "insert_chunks",
    "insert_params",
    "insert_run",
    "set_tags",
    "update_run",
    "upsert_summaries",
]


def dialect_insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert


def upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
           keys: Sequence[str]) -> None:
    """Insert rows, replacing the non-key columns of rows that already exist."""
    if not rows:
        return
    stmt = dialect_insert(conn)(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows))


def ensure_project(conn: Connection, name: str) -> int:
    """The project's id, creating the project on first use (safe under concurrency)."""
    found = conn.execute(select(project.c.id).where(project.c.name == name)).scalar()
    if found is not None:
        return found
    stmt = dialect_insert(conn)(project).values(name=name, created_time=time.time())
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return conn.execute(select(project.c.id).where(project.c.name == name)).scalar_one()


def insert_run(conn: Connection, values: Mapping[str, Any]) -> int:
    """Insert a run row and return its integer key."""
    return conn.execute(insert(run).values(**values).returning(run.c.pk)).scalar_one()


def update_run(conn: Connection, run_pk: int, values: Mapping[str, Any]) -> None:
    if "fingerprint" in values and "group_key" not in values:
        # What the run is changed (new data): its group key is remade when next needed.
        values = {**values, "group_key": None}
    conn.execute(update(run).where(run.c.pk == run_pk).values(**values))


def insert_params(conn: Connection, run_pk: int, params: Mapping[str, ParamValue]) -> None:
    rows = [
        {"run_pk": run_pk, "key": k, "vtype": p.vtype, "value_text": p.text, "value_num": p.number}
        for k, p in params.items()
    ]
    if rows:
        conn.execute(insert(param), rows)


def set_tags(conn: Connection, run_pk: int, tags: Mapping[str, str]) -> None:
    upsert(conn, tag, [{"run_pk": run_pk, "key": k, "value": v} for k, v in tags.items()],
           ("run_pk", "key"))


def insert_chunks(conn: Connection, run_pk: int, chunks: Iterable[Chunk]) -> int:
    """Append chunks of metric history; returns the number of points written."""
    rows, points = [], 0
    for key, seq, steps, values, times in chunks:
        packed_steps, packed_values, packed_times = encode(steps, values, times)
        rows.append({"run_pk": run_pk, "key": key, "seq": seq, "count": len(steps),
                     "min_step": min(steps), "max_step": max(steps), "steps": packed_steps,
                     "values": packed_values, "times": packed_times})
        points += len(steps)
    if rows:
        conn.execute(insert(metric_chunk), rows)
    return points


def upsert_summaries(conn: Connection, run_pk: int, summaries: Iterable[MetricSummary]) -> None:
    rows = []
    for s in summaries:
        last, last_nonfinite = encode_value(s.last) if s.last is not None else (None, None)
        rows.append({
            "run_pk": run_pk, "key": s.key, "last": last, "last_nonfinite": last_nonfinite,
            "last_step": s.last_step, "last_time": s.last_time, "min": s.min, "max": s.max,
            "count": s.count, "nonfinite_count": s.nonfinite_count,
        })
    upsert(conn, metric_summary, rows, ("run_pk", "key"))


def add_dataset_use(conn: Connection, run_pk: int, use: DatasetUse) -> None:
    """Record that a run used a dataset version (creating the version row on first use)."""
    values = {"path": use.path, "hash": use.hash, "hash_kind": use.hash_kind, "size": use.size,
              "nfiles": use.nfiles, "remote": use.remote, "source": use.source}
    dataset_id = None
    if use.hash is not None:
        stmt = dialect_insert(conn)(dataset).values(**values)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["hash", "path"]))
        dataset_id = conn.execute(
            select(dataset.c.id).where(dataset.c.hash == use.hash, dataset.c.path == use.path)
        ).scalar_one()
    else:
        dataset_id = conn.execute(insert(dataset).values(**values).returning(dataset.c.id)).scalar()
    upsert(conn, run_dataset, [{
        "run_pk": run_pk, "dataset_id": dataset_id, "role": use.role, "tracked": use.tracked,
        "dirty": use.dirty, "dirty_check": use.dirty_check, "pushed": use.pushed,
    }], ("run_pk", "dataset_id", "role"))


def add_artifact(conn: Connection, run_pk: int, name: str, sha256: str, size: int, uri: str,
                 created_time: float | None = None) -> None:
    add_artifacts(conn, run_pk, [(name, sha256, size, uri, created_time)])


def add_artifacts(conn: Connection, run_pk: int,
                  rows: Sequence[tuple[str, str, int, str, float | None]]) -> None:
    """Artifact rows (name, sha256, size, uri, created time), replacing those of the same
    name, in one statement."""
    now = time.time()
    upsert(conn, artifact, [{
        "run_pk": run_pk, "name": name, "sha256": sha256, "size": size, "uri": uri,
        "created_time": now if created is None else created,
    } for name, sha256, size, uri, created in rows], ("run_pk", "name"))
