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
The rows are read and written by :mod:`registry.store.mov`, imported when first needed, so
importing this module stays cheap (no SQLAlchemy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
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
    from registry.store import SqlStore

__all__ = [
    "MovDefinition",
    "MovMeasurement",
    "MovProgress",
    "ValueForMoney",
    "config_definitions",
    "define_mov",
    "list_movs",
    "log_mov",
    "make_definition",
    "mov_progress",
    "record_mov",
    "sync_definitions",
    "value_for_money",
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
            _rows().save_definitions(store, definitions)
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
    _rows().save_definitions(_open(ws), [definition])
    return definition


def list_movs(project: str | None = None, workspace: Workspace | None = None
              ) -> list[MovDefinition]:
    """The MoV definitions of a project (or of all projects), by project and name."""
    ws = workspace or load_workspace()
    store = _open(ws)
    sync_definitions(store, ws)
    return [definition for _, definition in _rows().definitions(store, project)]


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
    return _rows().add_measurement(store, project_name=project, name=name, run_pk=run_pk,
                                   value=number, evidence=notes, who=author, moment=moment,
                                   unit=unit)


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
    definitions, measured = _rows().definitions_and_measurements(store, project)
    progress = {(d.project, d.name): progress_of(d, measured.get(key, []))
                for key, d in definitions}
    for d in config_definitions(ws):
        if project in (None, d.project) and (d.project, d.name) not in progress:
            progress[(d.project, d.name)] = progress_of(d, [])
    return [progress[key] for key in sorted(progress)]


@dataclass(frozen=True)
class ValueForMoney:
    """A project's spending so far and, per MoV, progress toward target per 100 currency
    units (percentage points of the way from baseline to target)."""

    project: str
    currency: str
    total_cost: float
    costed_runs: int
    uncosted_runs: int
    per_100: dict[str, float | None]


def value_for_money(project: str | None = None, *,
                    workspace: Workspace | None = None) -> list[ValueForMoney]:
    """Cost so far per project (the ``cost`` metric runs record) against each MoV's progress.

    Runs without a cost (no prices, or a price missing) are counted, never taken as free."""
    ws = workspace or load_workspace()
    costs = _rows().project_costs(_open(ws), project)
    progress = mov_progress(project, workspace=ws)
    currency = str(ws.costs.get("currency", "")) if isinstance(ws.costs, Mapping) else ""
    out = []
    for name in sorted(costs):
        total, costed, uncosted = costs[name]
        per_100 = {p.name: (p.percent_to_target / total * 100
                            if p.percent_to_target is not None and total > 0 else None)
                   for p in progress if p.project == name}
        out.append(ValueForMoney(name, currency, total, costed, uncosted, per_100))
    return out


def _open(workspace: Workspace) -> SqlStore:
    return workspace.open_store()


def _rows():
    """The store's MoV functions (:mod:`registry.store.mov`), imported on first use."""
    from registry.store import mov

    return mov
