"""Measured organisational value (MoV): what a project is worth to its stakeholders.

Definitions come from the workspace configuration or from :func:`define_mov`::

    [projects.defects.mov.escape_rate]
    unit = "ppm"
    direction = "lower"          # which way is better: "higher" or "lower"
    baseline = 420               # where the project started
    target = 100                 # what it promised
    stakeholder = "Quality, plant 3"
    description = "Defective parts that reach the customer"

Measurements come from runs (``run.log_mov``) or from anywhere else (:func:`record_mov`), each
with who, when and the evidence; :func:`mov_progress` says how far each MoV has come.

The configuration wins for the definitions it declares: they are written to the store once per
process (:func:`sync_definitions`), and :func:`define_mov` refuses to change them. Removing a
definition from the configuration leaves it, and its measurements, in the store.
SQLAlchemy is imported when first needed, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry._mov_entities import (
    MovDefinition,
    MovMeasurement,
    MovProgress,
    as_name,
    as_number,
    as_text,
    as_time,
    make_definition,
    progress_of,
)
from registry.config import Workspace, load_workspace
from registry.errors import ConfigError, MovError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from registry.store import SqlStore

__all__ = [
    "MovDefinition",
    "MovMeasurement",
    "MovProgress",
    "config_definitions",
    "define_mov",
    "list_movs",
    "log_mov",
    "make_definition",
    "mov_progress",
    "record_mov",
    "sync_definitions",
]

_REQUIRED = ("unit", "direction", "baseline", "target")
_FIELDS = (*_REQUIRED, "stakeholder", "description")
# (store URL, the configuration's MoV tables as JSON) -> the definitions written for them.
_SYNCED: dict[tuple[str, str], tuple[MovDefinition, ...]] = {}

# -- the workspace configuration ---------------------------------------------------------------


def config_definitions(workspace: Workspace) -> tuple[MovDefinition, ...]:
    """The definitions the workspace configuration declares, validated."""
    return tuple(_from_config(workspace, project, name, spec)
                 for project, table in _config_tables(workspace).items()
                 for name, spec in table.items())


def _config_tables(workspace: Workspace) -> dict[str, Mapping[str, Any]]:
    tables = {}
    for project, settings in workspace.projects.items():
        movs = settings.get("mov") if isinstance(settings, Mapping) else None
        if movs is None:
            continue
        if not isinstance(movs, Mapping):
            raise ConfigError(f"projects.{project}.mov must be a table of MoV definitions",
                              str(workspace.config_file) if workspace.config_file else None)
        tables[project] = movs
    return tables


def _from_config(workspace: Workspace, project: str, name: str, spec: Any) -> MovDefinition:
    where = f"[projects.{project}.mov.{name}] in {workspace.config_file or 'the configuration'}"
    try:
        if not isinstance(spec, Mapping):
            raise MovError(name, f"must be a table with {', '.join(_REQUIRED)}")
        unknown = sorted(set(spec) - set(_FIELDS))
        if unknown:
            raise MovError(name, f"unknown key {unknown[0]!r}; known: {', '.join(_FIELDS)}")
        missing = [key for key in _REQUIRED if key not in spec]
        if missing:
            raise MovError(name, f"missing {', '.join(missing)}")
        return make_definition(project, name, **spec)
    except MovError as exc:
        raise MovError(name, f"{exc.reason} ({where})") from None


def sync_definitions(store: SqlStore, workspace: Workspace) -> tuple[MovDefinition, ...]:
    """Write the configuration's definitions into the store (an upsert). Once per process per
    store and configuration: later calls cost a dictionary lookup."""
    key = (store.url, json.dumps(_config_tables(workspace), sort_keys=True, default=str))
    if key not in _SYNCED:
        definitions = config_definitions(workspace)
        if definitions:
            with store.writing() as conn:
                for definition in definitions:
                    _upsert_definition(conn, definition)
        _SYNCED[key] = definitions
    return _SYNCED[key]


# -- the public API ----------------------------------------------------------------------------


def define_mov(project: str, name: str, *, unit: str, direction: str, baseline: float,
               target: float, stakeholder: str | None = None, description: str | None = None,
               workspace: Workspace | None = None) -> MovDefinition:
    """Create or update a project's MoV definition (not one the configuration declares)."""
    ws = workspace or load_workspace()
    definition = make_definition(project, name, unit=unit, direction=direction,
                                 baseline=baseline, target=target, stakeholder=stakeholder,
                                 description=description)
    declared = {(d.project, d.name): d for d in config_definitions(ws)}
    if declared.get((definition.project, definition.name), definition) != definition:
        raise MovError(definition.name, f"is declared in {ws.config_file} "
                                        f"([projects.{project}.mov.{name}]); change it there")
    with _open(ws).writing() as conn:
        _upsert_definition(conn, definition)
    return definition


def list_movs(project: str | None = None, workspace: Workspace | None = None
              ) -> list[MovDefinition]:
    """The MoV definitions of a project (or of all projects), by project and name."""
    ws = workspace or load_workspace()
    store = _open(ws)
    sync_definitions(store, ws)
    with store.reading() as conn:
        return [definition for _, definition in _select_definitions(conn, project)]


def log_mov(store: SqlStore, *, run_pk: int | None, project: str, name: str, value: Any,
            evidence: str | os.PathLike | None = None, who: str, unit: str | None = None,
            when: float | datetime | None = None,
            workspace: Workspace | None = None) -> MovMeasurement:
    """Record one measurement of a defined MoV (``when`` defaults to now); ``unit``, when
    given, must be the definition's. Evidence is free text: a URL, a report path, a sentence."""
    number = as_number(name, "value", value)
    notes = as_text(name, "evidence", evidence)
    author = as_name(name, "who", who)
    moment = as_time(name, when)
    sync_definitions(store, workspace or load_workspace())
    with store.writing() as conn:
        definition_id, definition = _definition_for(conn, project, name)
        if unit is not None and unit != definition.unit:
            raise MovError(name, f"is measured in {definition.unit!r}, not {unit!r}; convert "
                                 "the value or leave the unit out")
        run_id = _run_id(conn, name, run_pk)
        _insert_measurement(conn, definition_id, run_pk, number, notes, author, moment)
    return MovMeasurement(project=definition.project, name=definition.name, value=number,
                          unit=definition.unit, who=author, time=moment, evidence=notes,
                          run_id=run_id)


def record_mov(project: str, name: str, value: Any, *, evidence: str | None = None,
               who: str | None = None, unit: str | None = None,
               when: float | datetime | None = None,
               workspace: Workspace | None = None) -> MovMeasurement:
    """Record a measurement that comes from no run (a plant report, a survey); ``who``
    defaults to the workspace owner."""
    ws = workspace or load_workspace()
    return log_mov(_open(ws), run_pk=None, project=project, name=name, value=value,
                   evidence=evidence, who=who or ws.owner, unit=unit, when=when, workspace=ws)


def mov_progress(project: str | None = None, *,
                 workspace: Workspace | None = None) -> list[MovProgress]:
    """Each definition with its measurements over time, best so far and percent to target.

    A read-only workspace does not write the configuration's definitions into the store: those
    not stored yet are shown from the configuration, with no measurements."""
    ws = workspace or load_workspace()
    store = _open(ws)
    if not ws.readonly:
        sync_definitions(store, ws)
    with store.reading() as conn:
        definitions = _select_definitions(conn, project)
        measured = _select_measurements(conn, project)
    progress = {(d.project, d.name): progress_of(d, measured.get(key, []))
                for key, d in definitions}
    for d in config_definitions(ws):
        if project in (None, d.project) and (d.project, d.name) not in progress:
            progress[(d.project, d.name)] = progress_of(d, [])
    return [progress[key] for key in sorted(progress)]


# -- SQL (the store's tables, rows turned into the records above) -----------------------------


def _open(workspace: Workspace) -> SqlStore:
    return workspace.open_store()


def _upsert_definition(conn: Connection, definition: MovDefinition) -> None:
    from registry.store._writes import _insert_for, ensure_project
    from registry.store.schema import mov_definition

    stmt = _insert_for(conn)(mov_definition).values(
        project_id=ensure_project(conn, definition.project), name=definition.name,
        created_time=time.time(), **{key: getattr(definition, key) for key in _FIELDS})
    conn.execute(stmt.on_conflict_do_update(index_elements=["project_id", "name"],
                                            set_={key: stmt.excluded[key] for key in _FIELDS}))


def _select_definitions(conn: Connection, project: str | None
                        ) -> list[tuple[int, MovDefinition]]:
    from sqlalchemy import select

    from registry.store.schema import mov_definition as d
    from registry.store.schema import project as p

    query = (select(d.c.id, p.c.name.label("project"), d.c.name, *(d.c[k] for k in _FIELDS))
             .join(p, p.c.id == d.c.project_id).order_by(p.c.name, d.c.name))
    if project is not None:
        query = query.where(p.c.name == project)
    return [(row.id, MovDefinition(**{k: v for k, v in row._mapping.items() if k != "id"}))
            for row in conn.execute(query)]


def _definition_for(conn: Connection, project: str, name: str) -> tuple[int, MovDefinition]:
    defined = _select_definitions(conn, project)
    for key, definition in defined:
        if definition.name == name:
            return key, definition
    if not defined:
        raise MovError(name, f"project {project!r} defines no MoV; declare "
                             f"[projects.{project}.mov.{name}] in cairn.toml or call define_mov")
    raise MovError(name, f"not defined for project {project!r}",
                   defined=[definition.name for _, definition in defined])


def _run_id(conn: Connection, name: str, run_pk: int | None) -> str | None:
    if run_pk is None:
        return None
    from sqlalchemy import select

    from registry.store.schema import run

    run_id = conn.execute(select(run.c.id).where(run.c.pk == run_pk)).scalar()
    if run_id is None:
        raise MovError(name, f"no run has the key {run_pk}")
    return run_id


def _insert_measurement(conn: Connection, definition_id: int, run_pk: int | None,
                        value: float, evidence: str | None, who: str, moment: float) -> None:
    from sqlalchemy import insert

    from registry.store.schema import mov_measurement

    conn.execute(insert(mov_measurement).values(
        definition_id=definition_id, run_pk=run_pk, value=value, evidence=evidence, who=who,
        time=moment))


def _select_measurements(conn: Connection, project: str | None
                         ) -> dict[int, list[MovMeasurement]]:
    from sqlalchemy import select

    from registry.store.schema import mov_definition as d
    from registry.store.schema import mov_measurement as m
    from registry.store.schema import project as p
    from registry.store.schema import run as r

    query = (select(m.c.definition_id, p.c.name.label("project"), d.c.name, m.c.value, d.c.unit,
                    m.c.who, m.c.time, m.c.evidence, r.c.id.label("run_id"))
             .join(d, d.c.id == m.c.definition_id).join(p, p.c.id == d.c.project_id)
             .outerjoin(r, r.c.pk == m.c.run_pk).order_by(m.c.definition_id, m.c.time, m.c.id))
    if project is not None:
        query = query.where(p.c.name == project)
    measured: dict[int, list[MovMeasurement]] = {}
    for row in conn.execute(query):
        fields = {k: v for k, v in row._mapping.items() if k != "definition_id"}
        measured.setdefault(row.definition_id, []).append(MovMeasurement(**fields))
    return measured
