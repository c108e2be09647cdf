"""``cairn zoo``: list the backbones of every source and show one in full.

Plugged into ``cairn`` through the ``cairn.commands`` entry point, so ``registry`` never
imports the zoo.
"""

from __future__ import annotations

import json

import click

from registry.cli._format import table, value
from registry.cli._group import CairnGroup
from zoo import _api
from zoo._info import ModelInfo

__all__ = ["zoo"]

SOURCES = ("timm", "tfhub", "catalog")


@click.group(cls=CairnGroup)
def zoo() -> None:
    """Pretrained backbones from timm, TF Hub and the team catalog."""


@zoo.command("list")
@click.argument("query", required=False)
@click.option("--source", type=click.Choice(SOURCES), help="Only models of this source.")
@click.option("--pretrained-only", is_flag=True, help="Only models with published weights.")
@click.option("--available", is_flag=True, help="Only models whose weights are on this machine.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0),
              help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_models(query: str | None, source: str | None, pretrained_only: bool, available: bool,
                limit: int, as_json: bool) -> None:
    """Models whose name contains QUERY (or matches it as a glob: 'resnet5*')."""
    entries = _api.list(query, source, pretrained_only=pretrained_only, available_only=available)
    shown = entries[:limit] if limit else entries
    if as_json:
        for entry in shown:
            click.echo(json.dumps(entry.to_dict()))
        return
    if not entries:
        click.echo("no model matches")
        return
    click.echo(table(["name", "source", "params", "input", "license", "tag", "weights"],
                     [_row(e) for e in shown]))
    if len(shown) < len(entries):
        click.echo(f"{len(shown)} of {len(entries)} shown; --limit 0 for all")


@zoo.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="All fields as one JSON object.")
def info(name: str, as_json: bool) -> None:
    """Everything about model NAME, including where its weights file is or must be put."""
    entry = _api.info(name)
    if as_json:
        click.echo(json.dumps(entry.to_dict(), indent=2))
        return
    fields = entry.to_dict()
    fields["num_params"] = _params(entry.num_params)
    fields["weights_available"] = "local" if entry.weights_available else "missing"
    width = max(map(len, fields))
    for key, field in fields.items():
        shown = ", ".join(map(value, field)) if isinstance(field, list) else value(field)
        click.echo(f"{key.ljust(width)}  {shown}")
    if not entry.weights_available:
        click.echo(f"\nPut the weights file at {entry.weights_location} to create it pretrained.")


def _row(e: ModelInfo) -> tuple:
    size = "x".join(map(str, e.input_size)) if e.input_size else None
    return (e.name, e.source, _params(e.num_params), size, e.license, e.pretrained_tag,
            "local" if e.weights_available else "missing")


def _params(n: int | None) -> str | None:
    """A parameter count as 25.6M, 373k or 812."""
    if n is None:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)

