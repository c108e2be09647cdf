"""``cairn runs search QUERY``: the registry's query language on the command line."""

from __future__ import annotations

import json

import click

from registry.cli.kit import runs_table
from registry.config import load_workspace

__all__ = ["search"]


@click.command("search")
@click.argument("query", default="")
@click.option("--sort", help="Field to sort by: started (default, newest first), a metric, "
                             "params.KEY...; '-field' or 'field desc' for descending.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def search(query: str, sort: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Runs matching QUERY, e.g. 'val_acc >= 0.9 and params.lr < 1e-3 and "mixup"'.

    Compare fields with = != < <= > >= or ~ (contains): params.KEY, metrics.KEY (or a bare
    metric name), tags.KEY, data.ROLE (a data hash prefix), data[.ROLE].pushed (true, false,
    unknown: is the data in the DVC remote?), and attributes such as owner, status, started,
    commit, parent. Words or quoted text standing alone search names, questions,
    notes, conclusions, tags and text params. Join with and, or, not and parentheses.
    """
    from registry.query import search as run_search

    page = run_search(query, sort=sort, limit=limit, offset=offset, workspace=load_workspace())
    if as_json:
        for r in page.runs:
            click.echo(json.dumps(r.to_dict(), default=str))
        return
    if not page.runs:
        click.echo("no runs match" if offset == 0 else f"no runs match past the first {offset}")
        return
    click.echo(runs_table(page.runs))
    if page.has_more:
        click.echo(f"... more: --offset {offset + limit}", err=True)
