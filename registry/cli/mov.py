"""``cairn mov``: measured organisational value, defined, recorded and reported per project."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby

import click

from registry.cli.kit import CairnGroup, table, value
from registry.config import load_workspace
from registry.knowledge.mov import (
    MovDefinition,
    MovProgress,
    ValueForMoney,
    define_mov,
    list_movs,
    mov_progress,
    record_mov,
    value_for_money,
)

__all__ = ["mov", "progress_bar"]

BAR_WIDTH = 10
_NONE_DEFINED = ("no MoV defined; declare [projects.NAME.mov.KEY] in cairn.toml "
                 "or run `cairn mov define`")


@click.group(cls=CairnGroup)
def mov() -> None:
    """Measured organisational value: what each project is worth to its stakeholders."""


@mov.command("status")
@click.argument("project", required=False)
def status(project: str | None) -> None:
    """Progress of every MoV against its target, per project."""
    progress = mov_progress(project, workspace=load_workspace())
    if not progress:
        click.echo(_NONE_DEFINED)
        return
    spent = {v.project: v for v in value_for_money(project, workspace=load_workspace())}
    for index, (name, items) in enumerate(groupby(progress, key=lambda p: p.project)):
        click.echo(("\n" if index else "") + f"project {name}")
        click.echo(_status_table(list(items)))
        if name in spent:
            click.echo(_spending(spent[name]))


def _spending(v: ValueForMoney) -> str:
    """``cost so far: 412.5 EUR over 17 runs (3 without a cost); per 100 EUR: ...``."""
    unit = v.currency or "(no currency set)"
    line = f"cost so far: {v.total_cost:,.2f} {unit} over {v.costed_runs} runs"
    if v.uncosted_runs:
        line += f" ({v.uncosted_runs} more without a cost: prices missing)"
    gains = [f"{name} {pts:+.1f} points to target" for name, pts in v.per_100.items()
             if pts is not None]
    return line + (f"; per 100 {v.currency or 'units'}: " + ", ".join(gains) if gains else "")


def _status_table(items: Sequence[MovProgress]) -> str:
    headers = ["mov", "unit", "baseline", "target", "best", "progress", "last",
               "last measured", "measurements", "stakeholder"]
    rows = [(p.name, p.unit, p.baseline, _goal(p.direction, p.target), p.best,
             progress_bar(p.percent_to_target), p.latest, _date(p.latest_time), p.count,
             p.stakeholder) for p in items]
    return table(headers, rows)


def progress_bar(percent: float | None, width: int = BAR_WIDTH) -> str:
    """``[#####-----] 52%``: the bar is clamped to 0-100, the number is not."""
    if percent is None:
        return "-"
    filled = math.floor(min(max(percent, 0.0), 100.0) / 100 * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {percent:.0f}%"


def _goal(direction: str, target: float) -> str:
    return f"{'>=' if direction == 'higher' else '<='} {value(target)}"


def _date(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment).strftime("%Y-%m-%d")


@mov.command("define")
@click.argument("project")
@click.argument("name")
@click.option("--unit", required=True, help="What the value is counted in (ppm, min/shift).")
@click.option("--direction", required=True, type=click.Choice(["higher", "lower"]),
              help="Which way is better.")
@click.option("--baseline", required=True, type=float, help="Where the project started.")
@click.option("--target", required=True, type=float, help="What the project promised.")
@click.option("--stakeholder", help="Who the value matters to.")
@click.option("--description", help="What is measured, in a sentence.")
def define(project: str, name: str, unit: str, direction: str, baseline: float, target: float,
           stakeholder: str | None, description: str | None) -> None:
    """Define (or redefine) the MoV NAME of PROJECT."""
    d = define_mov(project, name, unit=unit, direction=direction, baseline=baseline,
                   target=target, stakeholder=stakeholder, description=description,
                   workspace=load_workspace())
    click.echo(f"defined {d.project}/{d.name}: {value(d.baseline)} -> {value(d.target)} "
               f"{d.unit}, {d.direction} is better")


# Unknown options pass as arguments, so that a negative VALUE needs no `--`.
@mov.command("record", context_settings={"ignore_unknown_options": True})
@click.argument("project")
@click.argument("name")
@click.argument("measured", metavar="VALUE", type=float)
@click.option("--evidence", help="Where the value comes from: a URL, a report, a sentence.")
@click.option("--who", help="Who measured it (default: the workspace owner).")
def record(project: str, name: str, measured: float, evidence: str | None,
           who: str | None) -> None:
    """Record a measurement of the MoV NAME of PROJECT."""
    ws = load_workspace()
    m = record_mov(project, name, measured, evidence=evidence, who=who, workspace=ws)
    now = next(p for p in mov_progress(project, workspace=ws) if p.name == m.name)
    click.echo(f"recorded {m.project}/{m.name} = {value(m.value)} {m.unit}; best "
               f"{value(now.best)}, {progress_bar(now.percent_to_target)} of the way")


@mov.command("list")
@click.argument("project", required=False)
def list_(project: str | None) -> None:
    """The MoV definitions of PROJECT (or of every project)."""
    definitions = list_movs(project, workspace=load_workspace())
    if not definitions:
        click.echo(_NONE_DEFINED)
        return
    click.echo(_definitions_table(definitions))


def _definitions_table(definitions: Sequence[MovDefinition]) -> str:
    headers = ["project", "mov", "unit", "better", "baseline", "target", "stakeholder",
               "description"]
    rows = [(d.project, d.name, d.unit, d.direction, d.baseline, d.target, d.stakeholder,
             d.description) for d in definitions]
    return table(headers, rows)
