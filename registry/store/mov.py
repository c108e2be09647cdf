"""MoV rows: each project's definitions, and measurements with their provenance.

Functions take an open :class:`~registry.store.SqlStore` and return the plain records of
:mod:`registry._mov_entities`; the rules (what a definition may hold, progress against target)
live in :mod:`registry.knowledge.mov`. Backups read and restore these rows through
:mod:`registry.store.backup`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select

from registry._mov_entities import MovDefinition, MovMeasurement
from registry.errors import MovError
from registry.store._writes import dialect_insert, ensure_project
from registry.store.schema import (
    metric_summary,
    mov_definition,
    mov_measurement,
    project,
    run,
)

__all__ = [
    "DEFINITION_FIELDS",
    "add_measurement",
    "definitions",
    "definitions_and_measurements",
    "of_runs",
    "project_costs",
    "save_definitions",
]

DEFINITION_FIELDS = ("unit", "direction", "baseline", "target", "stakeholder", "description")
Keyed = list[tuple[int, MovDefinition]]  # (definition key, definition)
Measured = dict[int, list[MovMeasurement]]  # definition key -> measurements, oldest first


def save_definitions(store: Any, items: Iterable[MovDefinition]) -> None:
    """Create or update definitions (by project and name), in one transaction."""
    items = list(items)
    if not items:
        return
    with store.writing() as conn:
        for definition in items:
            upsert_definition(conn, definition)


def definitions(store: Any, project_name: str | None = None) -> Keyed:
    """Definitions of a project (or of all), by project and name, with their keys."""
    with store.reading() as conn:
        return select_definitions(conn, project_name)


def definitions_and_measurements(store: Any, project_name: str | None = None
                                 ) -> tuple[Keyed, Measured]:
    """Definitions and their measurements, read in one transaction."""
    with store.reading() as conn:
        return select_definitions(conn, project_name), select_measurements(conn, project_name)


def add_measurement(store: Any, *, project_name: str, name: str, run_pk: int | None,
                    value: float, evidence: str | None, who: str, moment: float,
                    unit: str | None = None) -> MovMeasurement:
    """Record a measurement of a defined MoV; MovError if it is not defined, if ``unit`` is
    given and is not the definition's, or if ``run_pk`` names no run."""
    with store.writing() as conn:
        key, definition = _definition_for(conn, project_name, name)
        if unit is not None and unit != definition.unit:
            raise MovError(name, f"is measured in {definition.unit!r}, not {unit!r}; convert "
                                 "the value or leave the unit out")
        run_id = _run_id(conn, name, run_pk)
        conn.execute(insert(mov_measurement).values(
            definition_id=key, run_pk=run_pk, value=value, evidence=evidence, who=who,
            time=moment))
    return MovMeasurement(project=definition.project, name=definition.name, value=value,
                          unit=definition.unit, who=who, time=moment, evidence=evidence,
                          run_id=run_id)


def of_runs(store: Any, pks: Sequence[int]) -> dict[int, list[MovMeasurement]]:
    """MoV measurements taken on these runs, oldest first, by run key."""
    d, m = mov_definition, mov_measurement
    query = (select(m.c.run_pk, d.c.name, m.c.value, d.c.unit, m.c.who, m.c.time, m.c.evidence)
             .join(d, d.c.id == m.c.definition_id).where(m.c.run_pk.in_(list(pks)))
             .order_by(m.c.time, m.c.id))
    found: dict[int, list[MovMeasurement]] = {}
    with store.reading() as conn:
        for row in conn.execute(query):
            found.setdefault(row.run_pk, []).append(MovMeasurement(
                project="", name=row.name, value=row.value, unit=row.unit, who=row.who,
                time=row.time, evidence=row.evidence))
    return found


def project_costs(store: Any, name: str | None = None) -> dict[str, tuple[float, int, int]]:
    """Per project: the summed ``cost`` metric of its runs, how many runs have one, and how
    many ended runs have none (their cost is unknown)."""
    s = metric_summary
    costed = (select(project.c.name, func.sum(s.c.last), func.count())
              .select_from(s.join(run, run.c.pk == s.c.run_pk)
                           .join(project, project.c.id == run.c.project_id))
              .where(s.c.key == "cost", s.c.last.is_not(None)).group_by(project.c.name))
    has_cost = select(s.c.run_pk).where(s.c.key == "cost", s.c.last.is_not(None))
    uncosted = (select(project.c.name, func.count())
                .select_from(run.join(project, project.c.id == run.c.project_id))
                .where(run.c.end_time.is_not(None), run.c.pk.not_in(has_cost))
                .group_by(project.c.name))
    if name is not None:
        costed, uncosted = (q.where(project.c.name == name) for q in (costed, uncosted))
    with store.reading() as conn:
        found = {row[0]: (float(row[1]), int(row[2]), 0) for row in conn.execute(costed)}
        for row in conn.execute(uncosted):
            total, count, _ = found.get(row[0], (0.0, 0, 0))
            found[row[0]] = (total, count, int(row[1]))
    return found


# -- statements on a connection (shared with store.backup) -------------------------------------


def upsert_definition(conn: Connection, definition: MovDefinition) -> None:
    stmt = dialect_insert(conn)(mov_definition).values(
        project_id=ensure_project(conn, definition.project), name=definition.name,
        created_time=time.time(), **{k: getattr(definition, k) for k in DEFINITION_FIELDS})
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["project_id", "name"],
        set_={k: stmt.excluded[k] for k in DEFINITION_FIELDS}))


def select_definitions(conn: Connection, project_name: str | None) -> Keyed:
    d, p = mov_definition, project
    query = (select(d.c.id, p.c.name.label("project"), d.c.name,
                    *(d.c[k] for k in DEFINITION_FIELDS))
             .join(p, p.c.id == d.c.project_id).order_by(p.c.name, d.c.name))
    return [(row.id, MovDefinition(**{k: v for k, v in row._mapping.items() if k != "id"}))
            for row in conn.execute(_in_project(query, project_name))]


def select_measurements(conn: Connection, project_name: str | None) -> Measured:
    d, m, p, r = mov_definition, mov_measurement, project, run
    query = (select(m.c.definition_id, p.c.name.label("project"), d.c.name, m.c.value, d.c.unit,
                    m.c.who, m.c.time, m.c.evidence, r.c.id.label("run_id"))
             .join(d, d.c.id == m.c.definition_id).join(p, p.c.id == d.c.project_id)
             .outerjoin(r, r.c.pk == m.c.run_pk).order_by(m.c.definition_id, m.c.time, m.c.id))
    measured: Measured = {}
    for row in conn.execute(_in_project(query, project_name)):
        fields = {k: v for k, v in row._mapping.items() if k != "definition_id"}
        measured.setdefault(row.definition_id, []).append(MovMeasurement(**fields))
    return measured


def _in_project(query: Select, project_name: str | None) -> Select:
    return query if project_name is None else query.where(project.c.name == project_name)


def _definition_for(conn: Connection, project_name: str, name: str) -> tuple[int, MovDefinition]:
    defined = select_definitions(conn, project_name)
    for key, definition in defined:
        if definition.name == name:
            return key, definition
    if not defined:
        raise MovError(name, f"project {project_name!r} defines no MoV; declare "
                             f"[projects.{project_name}.mov.{name}] in cairn.toml or call "
                             "define_mov")
    raise MovError(name, f"not defined for project {project_name!r}",
                   defined=[definition.name for _, definition in defined])


def _run_id(conn: Connection, name: str, run_pk: int | None) -> str | None:
    if run_pk is None:
        return None
    run_id = conn.execute(select(run.c.id).where(run.c.pk == run_pk)).scalar()
    if run_id is None:
        raise MovError(name, f"no run has the key {run_pk}")
    return run_id
