"""``cairn catalog`` (new, validate, index, search, show, render), ``cairn data`` (card)
and ``cairn report``.

Plugged into ``cairn`` through the ``cairn.commands`` entry points, so ``registry`` never
imports the catalog.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from registry.cli.kit import CairnGroup, table
from registry.errors import CairnError

__all__ = ["catalog", "data", "report"]


@click.group(cls=CairnGroup)
def catalog() -> None:
    """Model and dataset cards: draft them, validate, search, show and render them."""


@catalog.command("new")
@click.option("--from-run", "run_ref", required=True, metavar="RUN",
              help="The fine-tune run to document (id, id prefix or name).")
@click.option("--name", help="Card name (default: the run's name).")
@click.option("--version", help="Card version (default: the next one).")
@click.option("--force", is_flag=True, help="Overwrite a card of the same name and version.")
@click.option("--track", type=click.Choice(("auto", "add", "stage", "none")), default="auto",
              show_default=True,
              help="How DVC tracks the weights: `dvc add`, the running `dvc repro` stage's "
                   "dvc.lock, or not at all (auto: the stage inside dvc repro, else add).")
def new(run_ref: str, name: str | None, version: str | None, force: bool, track: str) -> None:
    """Draft a card from RUN's record; the TODO(cairn) places are for a person to write."""
    from catalog._draft import draft

    result = draft(run_ref, name=name, version=version, force=force, track=track)
    click.echo(f"drafted {result.name}@{result.version}: {result.path}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo("edit the TODO(cairn) places, then `cairn catalog validate` and open a pull "
               "request")


@catalog.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--no-runs", is_flag=True, help="Do not check that the runs exist.")
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per problem.")
def validate(path: Path | None, no_runs: bool, strict: bool, as_json: bool) -> None:
    """Check the cards at PATH: a card file, a card's folder or a folder of cards (default:
    the catalog directory). Exit 1 on errors, and when PATH holds no card."""
    from catalog._validate import has_errors
    from catalog._validate import validate as run_validate

    problems = run_validate(path, check_runs_exist=not no_runs)
    for problem in problems:
        click.echo(json.dumps(problem.to_dict()) if as_json else str(problem))
    errors = sum(p.severity == "error" for p in problems)
    if not as_json:
        click.echo(f"{errors} error(s), {len(problems) - errors} warning(s)", err=True)
    if has_errors(problems) or (strict and problems):
        sys.exit(1)


@catalog.command("index")
def index() -> None:
    """Read the catalog directory's cards into the registry store for search."""
    from catalog._api import index as run_index

    result = run_index()
    for problem in result.skipped:
        click.echo(str(problem), err=True)
    click.echo(str(result))


@catalog.command("search")
@click.argument("query", required=False, default="")
@click.option("--project", help="Only cards of this project.")
@click.option("--status", type=click.Choice(["draft", "reviewed", "deprecated"]))
@click.option("--kind", type=click.Choice(["model", "dataset"]), help="Only cards of this kind.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per card.")
def search(query: str, project: str | None, status: str | None, kind: str | None, limit: int,
           as_json: bool) -> None:
    """Cards matching QUERY: words, filters such as status:reviewed tag:scratch kind:dataset,
    and conditions on latency_ms, throughput and accuracy: "latency_ms < 10 and accuracy >=
    0.9"."""
    from catalog._api import search as run_search

    hits = run_search(query, project=project, status=status, kind=kind, limit=limit)
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict()))
        return
    if not hits:
        click.echo("no card matches (cards are found once indexed: `cairn catalog index`)")
        return
    if any(h.latency_ms is not None for h in hits):  # profiled cards: their figures too
        click.echo(table(["card", "status", "backbone", "b1 p50 ms", "accuracy", "summary"],
                         [[h.ref, h.status, h.backbone, h.latency_ms, h.accuracy,
                           h.summary[:40]] for h in hits]))
        return
    click.echo(table(["card", "kind", "status", "project", "backbone", "summary"],
                     [[h.ref, h.kind, h.status, h.project, h.backbone, h.summary[:60]]
                      for h in hits]))


@catalog.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The front matter as JSON.")
def show(name: str, as_json: bool) -> None:
    """Show card NAME[@VERSION] (a model or dataset card): its fields, then its Markdown."""
    from catalog._api import get

    card = get(name, kind=None)
    if as_json:
        click.echo(json.dumps({"path": str(card.path or ""), **card.front_matter}, indent=2,
                              default=str))
        return
    click.echo(table(["field", "value"], _show_rows(card)))
    click.echo(card.body)


def _show_rows(card) -> list[list[object]]:
    fm = card.front_matter
    if fm.get("kind") != "dataset":
        rows = [[k, fm.get(k)] for k in
                ("name", "version", "status", "project", "owner", "backbone", "license")]
        return [*rows, ["labels", ", ".join(card.labels)], ["runs", ", ".join(card.runs)],
                ["path", card.path]]
    from catalog._dataset_schema import dataset_facts, dataset_hash

    rows = [[k, fm.get(k)] for k in
            ("kind", "name", "version", "status", "project", "owner", "license")]
    return [*rows, ["dvc md5", dataset_hash(card)], ["data", dataset_facts(card)],
            ["path", card.path]]


@catalog.command("render")
@click.argument("card")
@click.option("--out", type=click.Path(path_type=Path), help="Write the HTML here.")
def render(card: str, out: Path | None) -> None:
    """Render CARD (a card file or NAME[@VERSION]) to sanitised HTML."""
    from catalog._api import get
    from catalog._card import read_card
    from catalog._render import render_html

    path = Path(card)
    model_card = read_card(path) if path.is_file() else get(card, kind=None)
    html = render_html(model_card)
    if out is None:
        click.echo(html)
    else:
        out.write_text(html, encoding="utf-8")
        click.echo(f"wrote {out}")


@click.group(cls=CairnGroup)
def data() -> None:
    """Datasets: document a DVC-tracked image folder with a dataset card."""


@data.command("card")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Card name (default: the folder's name).")
@click.option("--version", help="Card version (default: 1, or the next one when the data "
              "changed since the last card).")
@click.option("--project", help="The project the dataset belongs to.")
@click.option("--force", is_flag=True, help="Redraft a card that documents this version.")
def card(path: Path, name: str | None, version: str | None, project: str | None,
         force: bool) -> None:
    """Draft the dataset card of PATH, an image folder tracked by DVC (PATH.dvc or a
    pipeline output), at <catalog>/datasets/<name>/README.md."""
    from catalog._dataset import draft_dataset_card

    result = draft_dataset_card(path, name=name, version=version, project=project,
                                force=force)
    scan = result.scan
    splits = ", ".join(f"{s} {n}" for s, n in scan.split_counts.items())
    click.echo(f"drafted dataset card {result.name}@{result.version}: {result.path}")
    click.echo(f"  {scan.images} images, {len(scan.labels)} classes; "
               f"splits: {splits}")
    for issue in result.issues:
        click.echo(f"  issue: {issue}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo("edit the TODO(cairn) places, then `cairn catalog validate` and open a pull "
               "request")


@click.command("report")
@click.argument("project")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the report "
              "(default: reports/ in the workspace).")
def report(project: str, out: Path | None) -> None:
    """Write a handover report of PROJECT (Markdown and HTML)."""
    from catalog._report import report as write_report

    try:
        written = write_report(project, out=out)
    except CairnError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {written.markdown}")
    click.echo(f"wrote {written.html}")
