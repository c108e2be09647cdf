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
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from registry._mov_entities import MovDefinition, as_name, as_number, as_text, make_definition
from registry.errors import CairnError, ImportFormatError, StoreError
from registry.store import SqlStore
from registry.store import backup as rows
from registry.store.mov import DEFINITION_FIELDS

__all__ = ["FORMATS", "MOV_FORMAT", "PROJECT_FORMAT", "MovImport", "export_mov", "import_mov"]

PROJECT_FORMAT = "cairn.project/1"
MOV_FORMAT = "cairn.mov/1"
FORMATS = (PROJECT_FORMAT, MOV_FORMAT)


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
    snap = rows.mov_snapshot(store, project_name=project, run_pks=run_pks)
    for name, description, created_time in snap.projects:
        if snap.names is None or name in snap.names:
            yield {"format": PROJECT_FORMAT, "name": name, "description": description,
                   "created_time": created_time}
    for key, definition in snap.definitions:
        yield {"format": MOV_FORMAT, **definition.to_dict(), "created_time": snap.created[key],
               "measurements": [{"value": m.value, "who": m.who, "time": m.time,
                                 "evidence": m.evidence, "run_id": m.run_id}
                                for m in snap.measured.get(key, [])
                                if snap.run_ids is None or m.run_id in snap.run_ids]}


# -- import -------------------------------------------------------------------------------------


def import_mov(store: SqlStore, records: list[tuple[int, dict[str, Any]]], *, replace: bool,
               errors: list[ImportFormatError]) -> MovImport:
    """Apply project and MoV records (line number, parsed line), projects first; each line
    lands whole or not at all, and a bad one is added to ``errors``."""
    done = MovImport(records=len(records))
    for number, data in sorted(records, key=lambda r: (r[1]["format"] != PROJECT_FORMAT, r[0])):
        try:
            if data["format"] == PROJECT_FORMAT:
                done.projects += rows.restore_project(store, **_project_of(data),
                                                      replace=replace)
            else:
                _add(done, rows.restore_definition(store, *_definition_of(data),
                                                   replace=replace))
        except StoreError:
            raise
        except ImportFormatError as exc:
            errors.append(exc)
        except CairnError as exc:
            errors.append(ImportFormatError(number, str(exc)))
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(ImportFormatError(number, f"malformed record: {exc!r}"))
    return done


def _add(done: MovImport, restored: rows.Restored) -> None:
    for counter in ("definitions", "measurements", "present", "relinked", "unlinked"):
        setattr(done, counter, getattr(done, counter) + getattr(restored, counter))


def _project_of(data: Mapping[str, Any]) -> dict[str, Any]:
    name, description = data["name"], data.get("description")
    if not isinstance(name, str) or not name or not isinstance(description, (str, type(None))):
        raise TypeError("a project's name must be non-empty text and its description text or null")
    return {"name": name, "description": description, "created_time": _time(data)}


def _definition_of(data: Mapping[str, Any]) -> tuple[MovDefinition, float, list[dict[str, Any]]]:
    definition = make_definition(data["project"], data["name"],
                                 **{k: data.get(k) for k in DEFINITION_FIELDS})
    label = definition.name
    measurements = [{"value": as_number(label, "value", m["value"]),
                     "who": as_name(label, "who", m["who"]),
                     "time": as_number(label, "time", m["time"]),
                     "evidence": as_text(label, "evidence", m.get("evidence")),
                     "run_id": _run_id(m.get("run_id"))} for m in data.get("measurements", [])]
    return definition, _time(data), measurements


def _run_id(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("a measurement's run_id must be text or null")
    return value


def _time(data: Mapping[str, Any]) -> float:
    value = data["created_time"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("created_time must be a finite number")
    return float(value)
