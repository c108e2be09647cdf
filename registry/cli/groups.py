"""``cairn runs groups QUERY``: the matching runs in groups that differ only in their seeds."""

from __future__ import annotations

import json

import click

from registry.cli.kit import table, timestamp, value
from registry.config import load_workspace

__all__ = ["groups"]


@click.command("groups")
@click.argument("query", default="")
@click.option("--metric", help="Statistics of this metric only, best group first.")
@click.option("--sort", help="n (group size), started (newest member, the default without "
                             "--metric) or a metric (by its mean); '-field' for descending.")
@click.option("--min-runs", default=1, show_default=True, type=click.IntRange(1),
              help="Leave out groups of fewer runs (2: only repeated experiments).")
@click.option("--all-statuses", "include_unfinished", is_flag=True,
              help="Count RUNNING, FAILED and KILLED runs too (by default only FINISHED "
                   "runs are counted; the others are listed as left out).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per group and line.")
def groups(query: str, metric: str | None, sort: str | None, min_runs: int,
           include_unfinished: bool, limit: int, offset: int, as_json: bool) -> None:
    """Runs matching QUERY (as in `cairn runs search`) in groups: same project, code, data
    and params except the seed params ([runs] seed_params, default "seed", which also
    matches "train.seed"). For each group: runs counted (n) and left out, and per metric the
    mean, standard deviation, min and max of the runs' last values (NaN and infinite values
    left out and counted). Compare two groups with `cairn runs compare --groups A B`.
    """
    from registry.knowledge.groups import better_when
    from registry.query.groups import groups as find

    if sort is None and metric:
        sort = metric if better_when(metric) == "min" else f"-{metric}"
    found = find(query, metric=metric, sort=sort, limit=limit + 1, offset=offset,
                 min_runs=min_runs, include_unfinished=include_unfinished,
                 workspace=load_workspace())
    shown = found[:limit]
    if as_json:
        for g in shown:
            click.echo(json.dumps(g.to_dict()))
    elif not found:
        click.echo("no groups match" if offset == 0 else f"no groups past the first {offset}")
    else:
        click.echo(_render(shown, metric))
    if len(found) > limit:
        click.echo(f"... more: --offset {offset + limit}", err=True)


def _render(shown: list, metric: str | None) -> str:
    headers = ["group", "project", "n", "left out", "name", "newest", "metric", "mean", "std",
               "min", "max", "not counted"]
    rows = []
    for g in shown:
        first = [g.id, g.project, g.n, _left(g.left_out), g.name, timestamp(g.newest)]
        stats = [g.metrics[metric]] if metric and metric in g.metrics else (
            [] if metric else list(g.metrics.values()))
        if not stats:
            rows.append([*first, metric or "-", "-", "-", "-", "-", ""])
        for i, s in enumerate(stats):
            lead = first if i == 0 else [""] * len(first)
            rows.append([*lead, s.key, value(s.mean), value(s.std), value(s.min),
                         value(s.max), _not_counted(s)])
    return table(headers, rows)


def _left(left_out: dict) -> str:
    return ", ".join(f"{count} {status}" for status, count in left_out.items()) or ""


def _not_counted(s) -> str:
    parts = []
    if s.nonfinite:
        parts.append(f"{s.nonfinite} NaN/inf")
    if s.missing:
        parts.append(f"{s.missing} without")
    return ", ".join(parts)
