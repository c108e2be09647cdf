"""``cairn runs compare``: runs side by side, with the cells that differ marked."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from registry.cli.kit import table, timestamp, value
from registry.config import load_workspace
from registry.entities import RunRecord
from registry.errors import CairnError
from registry.knowledge.comparison import MISSING, Comparison, compare, same

__all__ = ["compare_command", "render", "render_history"]

Cell = tuple[str, bool]  # text, and whether it differs from the first run's
_MAX_CELL = 40
_STATS = ("last", "min", "max")
_HASH = re.compile(r"[0-9a-f]{16,}")


@click.command("compare")
@click.argument("run_refs", metavar="RUN RUN [RUN]...", nargs=-1, required=True)
@click.option("--all", "show_all", is_flag=True, help="Show the rows all runs agree on too.")
@click.option("--json", "as_json", is_flag=True,
              help="The comparison as JSON (metric histories only with --history).")
@click.option("--history", "history_key", metavar="KEY",
              help="Only the history of metric KEY: one row per step, one column per run.")
@click.option("--max-points", type=click.IntRange(min=2),
              help="With --history: keep every k-th step (and the last), at most this many.")
@click.option("--groups", "as_groups", is_flag=True,
              help="Compare two groups of seeds (each named by a run of it or its group id "
                   "from `cairn runs groups`) on --metric, beyond seed noise.")
@click.option("--metric", help="With --groups: the metric compared.")
@click.option("--all-statuses", "include_unfinished", is_flag=True,
              help="With --groups: count RUNNING, FAILED and KILLED runs too.")
def compare_command(run_refs: tuple[str, ...], show_all: bool, as_json: bool,
                    history_key: str | None, max_points: int | None, as_groups: bool,
                    metric: str | None, include_unfinished: bool) -> None:
    """Compare RUNs (ids, id prefixes or unique names) side by side.

    Shows only what differs unless --all; cells that differ from the first run's are
    highlighted on a terminal and marked with '*' otherwise. With --groups, two groups of
    seeds A B: the difference of their means on --metric with a 95% interval, and a verdict
    ("B is better by 1.2 +/- 0.5 points (95%), n=5 vs 5").
    """
    if as_groups:
        _compare_groups(run_refs, metric, as_json, include_unfinished)
        return
    if metric or include_unfinished:
        raise click.UsageError("--metric and --all-statuses go with --groups")
    try:
        result = compare(run_refs, store=_store(), max_points=max_points,
                         history_keys=[history_key] if history_key else ())
    except CairnError as exc:
        raise click.ClickException(str(exc)) from exc
    if history_key and history_key not in result.histories:
        raise click.ClickException(f"none of these runs logged metric {history_key!r}")
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str))
    elif history_key:
        click.echo(render_history(result, history_key))
    else:
        click.echo(render(result, show_all=show_all, styled=_styled()), color=None)


def _store():
    return load_workspace().open_store()


def _compare_groups(refs: tuple[str, ...], metric: str | None, as_json: bool,
                    include_unfinished: bool) -> None:
    from registry.knowledge.groups import compare_groups

    if len(refs) != 2 or not metric:
        raise click.UsageError("--groups takes two groups, A and B, and --metric")
    result = compare_groups(refs[0], refs[1], metric, include_unfinished=include_unfinished,
                            workspace=load_workspace())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return
    rows = [[label, side.ref, side.id, side.project, side.n, side.runs, value(side.mean),
             value(side.std)] for label, side in (("A", result.a), ("B", result.b))]
    click.echo(table(["", "ref", "group", "project", "n", "runs", f"{metric} mean", "std"],
                     rows))
    if result.low is not None:
        scale = result.scale
        click.echo(f"B - A: {value(result.difference * scale)} {result.unit}, 95% interval "
                   f"{value(result.low * scale)} to {value(result.high * scale)} "
                   f"({result.method})")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(result.verdict)


def _styled() -> bool:
    """Whether ``click.echo`` will keep ANSI styles on stdout: on a terminal, or when colour
    was asked for (plain text marks differences with '*' instead)."""
    color = click.get_current_context().color
    return not click.utils.should_strip_ansi(sys.stdout, color)


def render(c: Comparison, *, show_all: bool = False, styled: bool = False) -> str:
    """The comparison as aligned text sections: runs, params, metrics, code, data, machine."""
    labels = _labels(c.runs)
    sections = [
        "runs\n" + _indent(_runs_table(c.runs, labels)),
        _section("params", c.params, c.param_differences, labels, show_all, styled),
        _metrics_section(c, labels, show_all, styled),
        _section("code", c.code, c.code_differences, labels, show_all, styled, _short),
        _section("data", c.data, c.data_differences, labels, show_all, styled, _short),
        _section("hardware", c.hardware, c.hardware_differences, labels, show_all, styled),
        _section("environment", c.environment, c.environment_differences, labels, show_all,
                 styled),
    ]
    return "\n\n".join(s for s in sections if s)


def render_history(c: Comparison, key: str) -> str:
    """One metric's aligned history: a step column and one column per run."""
    history = c.histories[key]
    rows = [(step, *(values[j] for values in history.values))
            for j, step in enumerate(history.steps)]
    return table(["step", *_labels(c.runs)], rows)


def _labels(runs: Sequence[RunRecord]) -> list[str]:
    """Column headers: a run's name where it is unique among these runs, else its short id."""
    names = [r.name for r in runs]
    return [_clip(r.name, 24) if r.name and names.count(r.name) == 1 else r.id[:8] for r in runs]


def _runs_table(runs: Sequence[RunRecord], labels: list[str]) -> str:
    rows = [[label, r.id[:8], r.name, r.owner, r.status, timestamp(r.start_time)]
            for label, r in zip(labels, runs, strict=True)]
    headers = ["run", "id", "name", "owner", "status", "started"]
    if all(r[0] == r[2] for r in rows):  # every label is the run's name: no need to repeat it
        headers.pop(2)
        rows = [r[:2] + r[3:] for r in rows]
    return table(headers, rows)


def _section(title: str, values: dict[str, list[Any]], differing: list[str], labels: list[str],
             show_all: bool, styled: bool, show: Callable[[Any], str] | None = None) -> str:
    if not values:
        return ""
    keys = list(values) if show_all else differing
    rows = [[(key, False), *_cells(values[key], show or _show)] for key in keys]
    return _titled(title, len(differing), len(values), len(keys),
                   _grid(["key", *labels], rows, styled))


def _metrics_section(c: Comparison, labels: list[str], show_all: bool, styled: bool) -> str:
    if not c.metrics:
        return ""
    keys = list(c.metrics) if show_all else c.metric_differences
    rows = []
    for key in keys:
        for stat in _STATS:
            stats = [MISSING if s is None else getattr(s, stat) for s in c.metrics[key]]
            rows.append([(key if stat == "last" else "", False), (stat, False),
                         *_cells(stats, _show)])
    return _titled("metrics", len(c.metric_differences), len(c.metrics), len(keys),
                   _grid(["key", "", *labels], rows, styled))


def _titled(title: str, differing: int, total: int, shown: int, body: str) -> str:
    hidden = total - shown
    heading = f"{title}: {differing} of {total} differ"
    if hidden:
        heading += f" ({hidden} identical hidden; --all shows them)"
    return heading + ("\n" + _indent(body) if shown else "")


def _cells(values: list[Any], show: Callable[[Any], str]) -> list[Cell]:
    return [(show(v), not same(values[0], v)) for v in values]


def _grid(headers: list[str], rows: list[list[Cell]], styled: bool) -> str:
    """Aligned columns; marked cells in bold yellow when styled, else followed by '*'."""
    texts = [[t + ("*" if marked and not styled else "") for t, marked in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *texts]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row, text in zip(rows, texts, strict=True):
        cells = [_paint(t, marked and styled) + " " * (w - len(t))
                 for (_, marked), t, w in zip(row, text, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _paint(text: str, marked: bool) -> str:
    return click.style(text, fg="yellow", bold=True) if marked else text


def _show(v: Any) -> str:
    return _clip(value(v))


def _short(v: Any) -> str:
    """Hashes and commits to 12 characters (cells are marked on the full value)."""
    return v[:12] if isinstance(v, str) and _HASH.fullmatch(v) else _show(v)


def _clip(text: str, limit: int = _MAX_CELL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
