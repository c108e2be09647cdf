"""What a backup reads and restores: whole runs, projects, MoV definitions and measurements.

The file format (JSON lines, checks, coercions) is :mod:`registry.transfer.backup`'s; here
are the rows, each run or MoV definition read and written in one transaction, so a restore
lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from registry._history import Chunk
from registry._mov_entities import MovDefinition, MovMeasurement
from registry._params import ParamValue
from registry.entities import DatasetUse, MetricPoint, MetricSummary, RunRecord
from registry.errors import MovError
from registry.store import _reads, _writes, textindex
from registry.store import schema as s
from registry.store.mov import DEFINITION_FIELDS, select_definitions, select_measurements

__all__ = [
    "SIMILARITY_KEYS",
    "MovSnapshot",
    "Restored",
    "RunSnapshot",
    "mov_snapshot",
    "replace_run",
    "restore_definition",
    "restore_project",
    "restore_run",
    "run_snapshot",
]

SIMILARITY_KEYS = ("model_family", "data_key", "group_key")  # run columns RunRecord lacks
_BATCH = 1000  # ids per IN list


@dataclass(frozen=True)
class RunSnapshot:
    """Everything stored about one run: the record, every metric point, the params as
    stored (key, type, text) and the similarity keys."""

    record: RunRecord
    history: dict[str, list[MetricPoint]]
    params: list[tuple[str, str, str]]
    keys: dict[str, str | None]


@dataclass(frozen=True)
class MovSnapshot:
    """Projects, MoV definitions (with creation times) and measurements in a backup's scope."""

    projects: list[tuple[str, str | None, float]]  # name, description, created_time
    definitions: list[tuple[int, MovDefinition]]
    measured: dict[int, list[MovMeasurement]]
    created: dict[int, float]  # definition key -> created_time
    names: set[str] | None  # projects in scope; None: all
    run_ids: set[str] | None  # only measurements of these runs; None: all


@dataclass
class Restored:
    """What restoring one MoV definition did."""

    definitions: int = 0  # created or replaced
    measurements: int = 0  # added
    present: int = 0  # already stored, skipped
    relinked: int = 0  # of those, given back their run
    unlinked: int = 0  # added without their run: it is not in the store


# -- runs ----------------------------------------------------------------------------------------


def run_snapshot(store: Any, pk: int) -> RunSnapshot:
    """One run, read in one transaction."""
    with store.reading() as conn:
        record = _reads.get_runs(conn, [pk])[0]
        history = _reads.metric_history(conn, pk)
        params = conn.execute(select(s.param.c.key, s.param.c.vtype, s.param.c.value_text)
                              .where(s.param.c.run_pk == pk).order_by(s.param.c.key)).all()
        keys = conn.execute(select(*(s.run.c[k] for k in SIMILARITY_KEYS))
                            .where(s.run.c.pk == pk)).one()
    return RunSnapshot(record, history, [tuple(p) for p in params],
                       dict(zip(SIMILARITY_KEYS, keys, strict=True)))


def restore_run(store: Any, project_name: str, values: Mapping[str, Any], *,
                params: Mapping[str, ParamValue], tags: Mapping[str, str],
                chunks: Iterable[Chunk], summaries: Iterable[MetricSummary],
                datasets: Iterable[DatasetUse],
                artifacts: Iterable[tuple[str, str, int, str, float]]) -> int:
    """Insert a whole run (its row, params, tags, history, data and artifact references) in
    one transaction; returns its key."""
    with store.writing() as conn:
        pk = _writes.insert_run(conn, {**values,
                                       "project_id": _writes.ensure_project(conn, project_name)})
        _fill_run(conn, pk, params, tags, chunks, summaries, datasets, artifacts)
    return pk


def replace_run(store: Any, pk: int, project_name: str, values: Mapping[str, Any], *,
                params: Mapping[str, ParamValue], tags: Mapping[str, str],
                chunks: Iterable[Chunk], summaries: Iterable[MetricSummary],
                datasets: Iterable[DatasetUse],
                artifacts: Iterable[tuple[str, str, int, str, float]]) -> None:
    """Replace everything stored about run ``pk`` in one transaction, keeping its key: the
    MoV measurements and MLflow links that point at it stay linked."""
    with store.writing() as conn:
        for table in (s.param, s.tag, s.metric_chunk, s.metric_summary, s.run_dataset,
                      s.artifact):
            conn.execute(delete(table).where(table.c.run_pk == pk))
        project_id = _writes.ensure_project(conn, project_name)
        _writes.update_run(conn, pk, {**values, "project_id": project_id})
        _fill_run(conn, pk, params, tags, chunks, summaries, datasets, artifacts)


def _fill_run(conn: Connection, pk: int, params: Mapping[str, ParamValue],
              tags: Mapping[str, str], chunks: Iterable[Chunk],
              summaries: Iterable[MetricSummary], datasets: Iterable[DatasetUse],
              artifacts: Iterable[tuple[str, str, int, str, float]]) -> None:
    _writes.insert_params(conn, pk, params)
    _writes.set_tags(conn, pk, tags)
    _writes.insert_chunks(conn, pk, chunks)
    _writes.upsert_summaries(conn, pk, summaries)
    for use in datasets:
        _writes.add_dataset_use(conn, pk, use)
    for artifact in artifacts:
        _writes.add_artifact(conn, pk, *artifact)
    textindex.refresh(conn, [pk])


# -- projects and MoV ----------------------------------------------------------------------------


def mov_snapshot(store: Any, *, project_name: str | None = None,
                 run_pks: Collection[int] | None = None) -> MovSnapshot:
    """Every project and MoV, one project's, or, given runs, their projects' with only the
    measurements taken on those runs; read in one transaction."""
    with store.reading() as conn:
        names = _scope(conn, project_name, run_pks)
        run_ids = None if run_pks is None else _run_ids(conn, run_pks)
        projects = conn.execute(select(s.project.c.name, s.project.c.description,
                                       s.project.c.created_time).order_by(s.project.c.name)).all()
        definitions, measured = [], {}
        for name in (None,) if names is None else sorted(names):
            definitions += select_definitions(conn, name)
            measured.update(select_measurements(conn, name))
        created = dict(conn.execute(select(s.mov_definition.c.id,
                                           s.mov_definition.c.created_time)).all())
    return MovSnapshot([tuple(p) for p in projects], definitions, measured, created, names,
                       run_ids)


def restore_project(store: Any, name: str, description: str | None, created_time: float, *,
                    replace: bool) -> bool:
    """Create the project, or give it an earlier creation time and (if ``replace``, or it has
    none) the backup's description; whether anything changed."""
    with store.writing() as conn:
        row = conn.execute(select(s.project).where(s.project.c.name == name)).first()
        if row is None:
            conn.execute(insert(s.project).values(name=name, description=description,
                                                  created_time=created_time))
            return True
        changes = {}
        if created_time < row.created_time:  # the project existed since then
            changes["created_time"] = created_time
        if description != row.description and (replace or row.description is None):
            changes["description"] = description
        if changes:
            conn.execute(update(s.project).where(s.project.c.id == row.id).values(**changes))
        return bool(changes)


def restore_definition(store: Any, definition: MovDefinition, created_time: float,
                       measurements: Sequence[Mapping[str, Any]], *, replace: bool) -> Restored:
    """Restore one definition with its measurements (value, who, time, evidence, run_id) in
    one transaction. A measurement already stored (same time, who and value) is skipped,
    and given back its run if it had lost it. MovError when the stored definition's unit
    differs and not ``replace``."""
    done = Restored()
    with store.writing() as conn:
        key = _definition_key(conn, definition, created_time, replace, done)
        pks = _run_pks(conn, {m["run_id"] for m in measurements if m["run_id"]})
        m_table = s.mov_measurement
        stored = {(m.time, m.who, m.value): (m.id, m.run_pk) for m in conn.execute(
            select(m_table).where(m_table.c.definition_id == key))}
        for m in measurements:
            run_pk = pks.get(m["run_id"])
            found = stored.get((m["time"], m["who"], m["value"]))
            if found is None:
                conn.execute(insert(m_table).values(
                    definition_id=key, run_pk=run_pk, value=m["value"], evidence=m["evidence"],
                    who=m["who"], time=m["time"]))
                stored[(m["time"], m["who"], m["value"])] = (None, run_pk)
                done.measurements += 1
                done.unlinked += m["run_id"] is not None and run_pk is None
                continue
            done.present += 1
            if found[0] is not None and found[1] is None and run_pk is not None:
                conn.execute(update(m_table).where(m_table.c.id == found[0])
                             .values(run_pk=run_pk))
                done.relinked += 1
    return done


def _definition_key(conn: Connection, definition: MovDefinition, created_time: float,
                    replace: bool, done: Restored) -> int:
    """The stored definition's key, creating it (or replacing it) from the backup's."""
    d = s.mov_definition
    project_id = _writes.ensure_project(conn, definition.project)
    where = (d.c.project_id == project_id) & (d.c.name == definition.name)
    row = conn.execute(select(d).where(where)).first()
    fields = {k: getattr(definition, k) for k in DEFINITION_FIELDS}
    if row is None:
        done.definitions += 1
        return conn.execute(insert(d).values(
            project_id=project_id, name=definition.name, created_time=created_time, **fields)
            .returning(d.c.id)).scalar_one()
    if replace and any(row._mapping[k] != v for k, v in fields.items()):
        conn.execute(update(d).where(where).values(**fields))
        done.definitions += 1
    elif row.unit != definition.unit:
        raise MovError(definition.name, f"of project {definition.project!r} is measured in "
                                        f"{row.unit!r} here and in {definition.unit!r} in the "
                                        "backup; import with --replace to take the backup's")
    return row.id


def _scope(conn: Connection, name: str | None, run_pks: Collection[int] | None
           ) -> set[str] | None:
    if run_pks is not None:
        query = select(s.project.c.name).join(s.run, s.run.c.project_id == s.project.c.id)
        return {n for batch in _batches(list(run_pks))
                for n in conn.execute(query.where(s.run.c.pk.in_(batch))).scalars()}
    return None if name is None else {name}


def _run_ids(conn: Connection, run_pks: Collection[int]) -> set[str]:
    return {i for batch in _batches(list(run_pks))
            for i in conn.execute(select(s.run.c.id).where(s.run.c.pk.in_(batch))).scalars()}


def _run_pks(conn: Connection, run_ids: set[str]) -> dict[str, int]:
    ids = sorted(run_ids)
    return {i: pk for batch in _batches(ids) for pk, i in
            conn.execute(select(s.run.c.pk, s.run.c.id).where(s.run.c.id.in_(batch)))}


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]
