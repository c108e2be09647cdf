"""Projects and their MoV in a run export: the record lines beside ``cairn.run/1``.

- ``cairn.project/1``: a project's name, description and creation time.
- ``cairn.mov/1``: a MoV definition (unit, direction, baseline, target, stakeholder,
  description, creation time) with its measurements, each with value, who, time, evidence and
  the id of the run it was measured on (null for a measurement that comes from no run). The
  values are in the definition's unit.

An import applies these lines after every run line of its file, so a measurement finds its run
wherever the run's line is. A measurement is known by its MoV, time, who and value: one the
store already has is skipped, and given its run back if the store had lost it (a run replaced
by ``--replace``, or imported later). A measurement whose run is in neither the file nor the
store is kept without its run, and counted. What the store already has wins: an existing
project keeps its description and an existing definition its fields, unless ``replace``;
a definition whose unit differs from the store's is refused (its values would be misread).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from registry._mov_entities import MovDefinition, as_name, as_number, as_text, make_definition
from registry.errors import CairnError, ImportFormatError, StoreError
from registry.knowledge.mov import _select_definitions, _select_measurements
from registry.store import SqlStore, _writes
from registry.store import schema as s

__all__ = ["FORMATS", "MOV_FORMAT", "PROJECT_FORMAT", "MovImport", "export_mov", "import_mov"]

PROJECT_FORMAT = "cairn.project/1"
MOV_FORMAT = "cairn.mov/1"
FORMATS = (PROJECT_FORMAT, MOV_FORMAT)
_DEFINITION_FIELDS = ("unit", "direction", "baseline", "target", "stakeholder", "description")
_BATCH = 1000  # run ids per IN list


@dataclass
class MovImport:
    """What the project and MoV lines of an import did."""

    records: int = 0  # project and MoV lines read
    projects: int = 0  # projects created, or given the backup's description or creation time
    definitions: int = 0  # definitions created (or replaced)
    measurements: int = 0  # measurements added
    present: int = 0  # measurements the store already had, skipped
    relinked: int = 0  # of those, measurements given back their run
    unlinked: int = 0  # measurements added without their run: it is not in the store

    def summary(self) -> str:
        text = (f"restored {self.projects} projects, {self.definitions} MoV definitions and "
                f"{self.measurements} measurements, skipped {self.present} already present")
        if self.relinked:
            text += f" ({self.relinked} given back their run)"
        if self.unlinked:
            text += f"; {self.unlinked} measurements kept without their run (not in the store)"
        return text


# -- export -------------------------------------------------------------------------------------


def export_mov(store: SqlStore, *, project: str | None = None,
               run_pks: Collection[int] | None = None) -> Iterator[dict[str, Any]]:
    """Project and MoV records: of every project, of one, or, given runs, of their projects
    with only the measurements taken on those runs."""
    with store.reading() as conn:
        names = _scope(conn, project, run_pks)
        runs = None if run_pks is None else _run_ids(conn, run_pks)
        projects = conn.execute(select(s.project.c.name, s.project.c.description,
                                       s.project.c.created_time).order_by(s.project.c.name)).all()
        definitions, measured = [], {}
        for name in (None,) if names is None else sorted(names):
            definitions += _select_definitions(conn, name)
            measured.update(_select_measurements(conn, name))
        created = dict(conn.execute(select(s.mov_definition.c.id,
                                           s.mov_definition.c.created_time)).all())
    for name, description, created_time in projects:
        if names is None or name in names:
            yield {"format": PROJECT_FORMAT, "name": name, "description": description,
                   "created_time": created_time}
    for key, definition in definitions:
        yield {"format": MOV_FORMAT, **definition.to_dict(), "created_time": created[key],
               "measurements": [{"value": m.value, "who": m.who, "time": m.time,
                                 "evidence": m.evidence, "run_id": m.run_id}
                                for m in measured.get(key, [])
                                if runs is None or m.run_id in runs]}


def _scope(conn: Connection, name: str | None, run_pks: Collection[int] | None
           ) -> set[str] | None:
    """The project names to export; None for all."""
    if run_pks is not None:
        query = select(s.project.c.name).join(s.run, s.run.c.project_id == s.project.c.id)
        return {n for batch in _batches(list(run_pks))
                for n in conn.execute(query.where(s.run.c.pk.in_(batch))).scalars()}
    return None if name is None else {name}


def _run_ids(conn: Connection, run_pks: Collection[int]) -> set[str]:
    return {i for batch in _batches(list(run_pks))
            for i in conn.execute(select(s.run.c.id).where(s.run.c.pk.in_(batch))).scalars()}


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


# -- import -------------------------------------------------------------------------------------


def import_mov(store: SqlStore, records: list[tuple[int, dict[str, Any]]], *, replace: bool,
               errors: list[ImportFormatError]) -> MovImport:
    """Apply project and MoV records (line number, parsed line), projects first; each line
    lands whole or not at all, and a bad one is added to ``errors``."""
    done = MovImport(records=len(records))
    for number, data in sorted(records, key=lambda r: (r[1]["format"] != PROJECT_FORMAT, r[0])):
        try:
            if data["format"] == PROJECT_FORMAT:
                _import_project(store, _project_of(data), replace, done)
            else:
                _import_definition(store, number, *_definition_of(data), replace, done)
        except StoreError:
            raise
        except ImportFormatError as exc:
            errors.append(exc)
        except CairnError as exc:
            errors.append(ImportFormatError(number, str(exc)))
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(ImportFormatError(number, f"malformed record: {exc!r}"))
    return done


def _project_of(data: dict[str, Any]) -> dict[str, Any]:
    name, description = data["name"], data.get("description")
    if not isinstance(name, str) or not name or not isinstance(description, (str, type(None))):
        raise TypeError("a project's name must be non-empty text and its description text or null")
    return {"name": name, "description": description, "created_time": _time(data)}


def _import_project(store: SqlStore, values: dict[str, Any], replace: bool,
                    done: MovImport) -> None:
    with store.writing() as conn:
        row = conn.execute(select(s.project).where(s.project.c.name == values["name"])).first()
        if row is None:
            conn.execute(insert(s.project).values(**values))
            done.projects += 1
            return
        changes = {}
        if values["created_time"] < row.created_time:  # the project existed since then
            changes["created_time"] = values["created_time"]
        if values["description"] != row.description and (replace or row.description is None):
            changes["description"] = values["description"]
        if changes:
            conn.execute(update(s.project).where(s.project.c.id == row.id).values(**changes))
            done.projects += 1


def _definition_of(data: dict[str, Any]) -> tuple[MovDefinition, float, list[dict[str, Any]]]:
    definition = make_definition(data["project"], data["name"],
                                 **{k: data.get(k) for k in _DEFINITION_FIELDS})
    label = definition.name
    measurements = [{"value": as_number(label, "value", m["value"]),
                     "who": as_name(label, "who", m["who"]),
                     "time": as_number(label, "time", m["time"]),
                     "evidence": as_text(label, "evidence", m.get("evidence")),
                     "run_id": _run_id(m.get("run_id"))} for m in data.get("measurements", [])]
    return definition, _time(data), measurements


def _import_definition(store: SqlStore, number: int, definition: MovDefinition,
                       created_time: float, measurements: list[dict[str, Any]], replace: bool,
                       done: MovImport) -> None:
    with store.writing() as conn:
        key = _definition_key(conn, number, definition, created_time, replace, done)
        pks = _run_pks(conn, {m["run_id"] for m in measurements if m["run_id"]})
        stored = {(m.time, m.who, m.value): (m.id, m.run_pk) for m in conn.execute(
            select(s.mov_measurement).where(s.mov_measurement.c.definition_id == key))}
        for m in measurements:
            run_pk = pks.get(m["run_id"])
            found = stored.get((m["time"], m["who"], m["value"]))
            if found is None:
                conn.execute(insert(s.mov_measurement).values(
                    definition_id=key, run_pk=run_pk, value=m["value"], evidence=m["evidence"],
                    who=m["who"], time=m["time"]))
                stored[(m["time"], m["who"], m["value"])] = (None, run_pk)
                done.measurements += 1
                if m["run_id"] is not None and run_pk is None:
                    done.unlinked += 1
                continue
            done.present += 1
            if found[0] is not None and found[1] is None and run_pk is not None:
                conn.execute(update(s.mov_measurement).where(s.mov_measurement.c.id == found[0])
                             .values(run_pk=run_pk))
                done.relinked += 1


def _definition_key(conn: Connection, number: int, definition: MovDefinition,
                    created_time: float, replace: bool, done: MovImport) -> int:
    """The stored definition's key, creating it (or replacing it) from the backup's."""
    project_id = _writes.ensure_project(conn, definition.project)
    where = (s.mov_definition.c.project_id == project_id) & (
        s.mov_definition.c.name == definition.name)
    row = conn.execute(select(s.mov_definition).where(where)).first()
    fields = {k: getattr(definition, k) for k in _DEFINITION_FIELDS}
    if row is None:
        done.definitions += 1
        return conn.execute(insert(s.mov_definition).values(
            project_id=project_id, name=definition.name, created_time=created_time, **fields)
            .returning(s.mov_definition.c.id)).scalar_one()
    if replace and any(row._mapping[k] != v for k, v in fields.items()):
        conn.execute(update(s.mov_definition).where(where).values(**fields))
        done.definitions += 1
    elif row.unit != definition.unit:
        raise ImportFormatError(number, f"MoV {definition.name!r} of project "
                                        f"{definition.project!r} is measured in {row.unit!r} "
                                        f"here and in {definition.unit!r} in the backup; "
                                        "import with --replace to take the backup's")
    return row.id


def _run_pks(conn: Connection, run_ids: set[str]) -> dict[str, int]:
    ids = sorted(run_ids)
    return {i: pk for batch in _batches(ids)
            for pk, i in conn.execute(select(s.run.c.pk, s.run.c.id).where(s.run.c.id.in_(batch)))}


def _run_id(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("a measurement's run_id must be text or null")
    return value


def _time(data: dict[str, Any]) -> float:
    value = data["created_time"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("created_time must be a finite number")
    return float(value)
