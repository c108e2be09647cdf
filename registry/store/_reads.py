"""Read operations: rows in, plain records out."""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, select

from registry._history import Chunk, Columns, Summary, decode
from registry._params import ParamValue
from registry.entities import (
    ArtifactRecord,
    DatasetUse,
    MetricPoint,
    MetricSummary,
    RunRecord,
    decode_value,
)
from registry.errors import AmbiguousRunError, RunNotFoundError
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

__all__ = ["get_runs", "history_ends", "keys_of", "list_run_pks", "metric_columns",
           "metric_history", "resolve_run", "stored_chunks", "summaries_with"]

_HEX = re.compile(r"[0-9a-f]{1,32}")


def resolve_run(conn: Connection, ref: str) -> int:
    """Find a run by full id, unique id prefix (at least 4 characters) or unique name."""
    ref = ref.strip()
    hex_ref = ref.lower()
    if _HEX.fullmatch(hex_ref):
        # A range, not LIKE, so the unique index on run.id serves prefixes too; ids are
        # lowercase hex, so every id starting with the prefix sorts below prefix + "g".
        pks = _match(conn, run.c.id == hex_ref) or (
            _match(conn, (run.c.id >= hex_ref) & (run.c.id < hex_ref + "g"))
            if len(hex_ref) >= 4 else []
        )
        if pks:
            return _one(ref, pks)
    return _one(ref, _match(conn, run.c.name == ref))


def _match(conn: Connection, condition) -> list[tuple[int, str]]:
    return list(conn.execute(select(run.c.pk, run.c.id).where(condition).limit(20)).all())


def _one(ref: str, rows: list[tuple[int, str]]) -> int:
    if not rows:
        raise RunNotFoundError(ref)
    if len(rows) > 1:
        raise AmbiguousRunError(ref, [r[1] for r in rows])
    return rows[0][0]


def list_run_pks(conn: Connection, *, project_name: str | None = None, owner: str | None = None,
                 status: str | None = None, limit: int = 50, offset: int = 0,
                 since: float | None = None, parent_id: str | None = None) -> list[int]:
    """Run keys, newest first, filtered by the common facets (and the parent run's id)."""
    query: Select = select(run.c.pk).order_by(run.c.start_time.desc(), run.c.pk.desc())
    if project_name is not None:
        query = query.join(project, project.c.id == run.c.project_id).where(
            project.c.name == project_name)
    if owner is not None:
        query = query.where(run.c.owner == owner)
    if status is not None:
        query = query.where(run.c.status == status)
    if since is not None:
        query = query.where(run.c.start_time >= since)
    if parent_id is not None:
        query = query.where(run.c.parent_id == parent_id)
    return list(conn.execute(query.limit(limit).offset(offset)).scalars())


def get_runs(conn: Connection, pks: Sequence[int], *, details: bool = True) -> list[RunRecord]:
    """Full records for the given run keys, in the given order."""
    if not pks:
        return []
    rows = conn.execute(
        select(run, project.c.name.label("project_name"))
        .join(project, project.c.id == run.c.project_id).where(run.c.pk.in_(pks))
    ).mappings().all()
    records = {row["pk"]: _record(row) for row in rows}
    _attach_summaries(conn, records)
    if details:
        _attach_params(conn, records)
        _attach_tags(conn, records)
        _attach_datasets(conn, records)
        _attach_artifacts(conn, records)
    return [records[pk] for pk in pks if pk in records]


def metric_columns(conn: Connection, run_pk: int,
                   keys: Sequence[str] | None = None) -> dict[str, Columns]:
    """A run's metric histories as (steps, values, times) arrays, in logging order."""
    query = select(metric_chunk.c.key, metric_chunk.c.steps, metric_chunk.c["values"],
                   metric_chunk.c.times).where(metric_chunk.c.run_pk == run_pk)
    if keys is not None:
        query = query.where(metric_chunk.c.key.in_(list(keys)))
    columns: dict[str, Columns] = {}
    for key, steps, values, times in conn.execute(
            query.order_by(metric_chunk.c.key, metric_chunk.c.seq)):
        chunk = decode(steps, values, times)
        if key in columns:
            for whole, part in zip(columns[key], chunk, strict=True):
                whole.extend(part)
        else:
            columns[key] = chunk
    return columns


def metric_history(conn: Connection, run_pk: int,
                   keys: Sequence[str] | None = None) -> dict[str, list[MetricPoint]]:
    """Every logged point of a run's metrics, in step order (ties in logging order)."""
    history = {}
    for key, (steps, values, times) in metric_columns(conn, run_pk, keys).items():
        order = sorted(range(len(steps)), key=steps.__getitem__)
        history[key] = [MetricPoint(steps[i], values[i], times[i]) for i in order]
    return history


def _record(row: Any) -> RunRecord:
    code = dict(row["code"] or {})
    code.update({
        "state": row["code_state"], "commit": row["git_commit"], "branch": row["git_branch"],
        "remote": row["git_remote"], "dirty": row["git_dirty"],
        "diff_sha256": row["git_diff_sha256"],
    })
    return RunRecord(
        id=row["id"], project=row["project_name"], name=row["name"], owner=row["owner"],
        stored_status=row["status"], start_time=row["start_time"], end_time=row["end_time"],
        heartbeat_time=row["heartbeat_time"], heartbeat_interval=row["heartbeat_interval"],
        question=row["question"], notes=row["notes"], conclusion=row["conclusion"],
        failure=row["failure"], fingerprint=row["fingerprint"], code=code,
        command=row["command"], entry_point=row["entry_point"], cwd=row["cwd"],
        hostname=row["hostname"], hardware=row["hardware"] or {},
        environment=row["environment"] or {}, warnings=list(row["warnings"] or []),
        mlflow_run_id=row["mlflow_run_id"], parent_id=row["parent_id"],
    )


def _by_run(conn: Connection, query: Select, records: dict[int, RunRecord]):
    yield from conn.execute(query.where(query.selected_columns.run_pk.in_(list(records))))


def _attach_summaries(conn: Connection, records: dict[int, RunRecord]) -> None:
    for r in _by_run(conn, select(metric_summary), records):
        records[r.run_pk].metrics[r.key] = MetricSummary(
            key=r.key, last=decode_value(r.last, r.last_nonfinite), last_step=r.last_step,
            last_time=r.last_time, min=r.min, max=r.max, count=r.count,
            nonfinite_count=r.nonfinite_count,
        )


def _attach_params(conn: Connection, records: dict[int, RunRecord]) -> None:
    for r in _by_run(conn, select(param).order_by(param.c.key), records):
        records[r.run_pk].params[r.key] = ParamValue(r.vtype, r.value_text, r.value_num).value()


def _attach_tags(conn: Connection, records: dict[int, RunRecord]) -> None:
    for r in _by_run(conn, select(tag).order_by(tag.c.key), records):
        records[r.run_pk].tags[r.key] = r.value


def _attach_datasets(conn: Connection, records: dict[int, RunRecord]) -> None:
    query = (select(run_dataset, dataset).join(dataset, dataset.c.id == run_dataset.c.dataset_id)
             .order_by(run_dataset.c.role, dataset.c.path))
    for r in _by_run(conn, query, records):
        records[r.run_pk].datasets.append(DatasetUse(
            path=r.path, role=r.role, tracked=r.tracked, hash=r.hash, hash_kind=r.hash_kind,
            size=r.size, nfiles=r.nfiles, remote=r.remote, source=r.source, dirty=r.dirty,
            dirty_check=r.dirty_check, pushed=r.pushed,
        ))


def _attach_artifacts(conn: Connection, records: dict[int, RunRecord]) -> None:
    for r in _by_run(conn, select(artifact).order_by(artifact.c.name), records):
        records[r.run_pk].artifacts.append(
            ArtifactRecord(r.name, r.sha256, r.size, r.uri, r.created_time))


def keys_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, int]:
    """Integer keys of the runs with these full ids (ids the store lacks are left out)."""
    found: dict[str, int] = {}
    ids = list(run_ids)
    for start in range(0, len(ids), 1000):
        query = select(run.c.id, run.c.pk).where(run.c.id.in_(ids[start:start + 1000]))
        found.update((run_id, pk) for run_id, pk in conn.execute(query))
    return found


def stored_chunks(conn: Connection, run_pk: int,
                  chunks: Sequence[Chunk]) -> set[tuple[str, int]]:
    """Which of ``chunks`` (by key and seq) the run's history already holds."""
    keys = sorted({c[0] for c in chunks})
    low = min(c[1] for c in chunks)
    query = select(metric_chunk.c.key, metric_chunk.c.seq).where(
        metric_chunk.c.run_pk == run_pk, metric_chunk.c.key.in_(keys), metric_chunk.c.seq >= low)
    wanted = {(c[0], c[1]) for c in chunks}
    return {(k, s) for k, s in conn.execute(query) if (k, s) in wanted}


def history_ends(conn: Connection, run_pk: int,
                 keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """The last chunk seq and the last step of each of ``keys`` the run has logged."""
    mc = metric_chunk
    query = (select(mc.c.key, func.max(mc.c.seq), func.max(mc.c.max_step))
             .where(mc.c.run_pk == run_pk, mc.c.key.in_(sorted(set(keys)))).group_by(mc.c.key))
    return {key: (int(seq), int(step)) for key, seq, step in conn.execute(query)}


def summaries_with(conn: Connection, run_pk: int, new: Sequence[Chunk]) -> list[MetricSummary]:
    """Each metric's summary over its stored history plus ``new`` chunks, folded in seq order."""
    by_key: dict[str, list[Chunk]] = {}
    for chunk in new:
        by_key.setdefault(chunk[0], []).append(chunk)
    out = []
    mc = metric_chunk
    for key, fresh in by_key.items():
        query = (select(mc.c.seq, mc.c.steps, mc.c["values"], mc.c.times)
                 .where(mc.c.run_pk == run_pk, mc.c.key == key).order_by(mc.c.seq)
                 .execution_options(yield_per=16))
        stored = ((seq, decode(s, v, t)) for seq, s, v, t in conn.execute(query))
        added = sorted(((c[1], c[2:]) for c in fresh), key=lambda item: item[0])
        summary = Summary()
        for _, (steps, values, times) in heapq.merge(stored, added, key=lambda i: i[0]):
            summary.add(steps, values, times)
        out.append(summary.freeze(key))
    return out
