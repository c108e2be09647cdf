"""``cairn runs similar`` and ``cairn runs best``: has this been tried, and where to start."""

from __future__ import annotations

import json

import click

from registry.cli.kit import table, timestamp, value

__all__ = ["best", "similar"]


@click.command("similar")
@click.argument("run_ref", metavar="RUN")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--min-score", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Leave out runs less alike than this (1 = the same experiment).")
@click.option("--json", "as_json", is_flag=True)
def similar(run_ref: str, limit: int, min_score: float, as_json: bool) -> None:
    """Earlier runs like RUN, by anyone: the same data, model family and nearby params."""
    from registry.knowledge.similarity import primary_metric
    from registry.knowledge.similarity import similar as find

    priors = find(run_ref, limit=limit, min_score=min_score)
    if as_json:
        for p in priors:
            click.echo(json.dumps(p.to_dict()))
        return
    if not priors:
        click.echo("nothing similar recorded")
        return
    rows = []
    for p in priors:
        metric = primary_metric(p.run)
        best = None
        if metric and metric[0] in p.run.metrics:
            s = p.run.metrics[metric[0]]
            best = f"{metric[0]}={value(s.max if metric[1] == 'max' else s.min)}"
        diffs = ", ".join(f"{k}={value(b)}" for k, (_, b) in list(p.differences.items())[:3])
        rows.append((p.run.id[:8], p.run.name, p.run.owner, timestamp(p.run.start_time),
                     p.run.status, "exact" if p.exact else f"{p.score:.2f}", best,
                     diffs or "; ".join(p.reasons)))
    click.echo(table(["id", "name", "owner", "started", "status", "score", "best", "differs"],
                     rows))


@click.command("best")
@click.option("--data", required=True, help="A DVC-tracked path or a DVC hash prefix.")
@click.option("--metric", required=True, help="The metric that says how good a run is.")
@click.option("--mode", type=click.Choice(["max", "min"]),
              help="Default: min for losses and errors, max otherwise.")
@click.option("--project")
def best(data: str, metric: str, mode: str | None, project: str | None) -> None:
    """The best finished run on DATA by METRIC: the case to start from."""
    from registry.knowledge.similarity import best_prior

    record = best_prior(data, metric, mode=mode, project=project)
    if record is None:
        raise click.ClickException(f"no finished run on {data} has the metric {metric!r}")
    s = record.metrics[metric]
    click.echo(f"{record.id}  {record.name or ''}  by {record.owner}, "
               f"{timestamp(record.start_time)}: {metric} best {value(s.max)} / {value(s.min)} "
               f"(max / min), last {value(s.last)}")
    if record.params:
        click.echo(table(["param", "value"], sorted(record.params.items())))
