"""``cairn runs``: list, show, export, import and deliver recorded runs."""

from __future__ import annotations

import collections
import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from registry.cli.compare import compare_command
from registry.cli.kit import duration, runs_table, table, timestamp, value
from registry.cli.search import search
from registry.cli.tried import best, similar
from registry.config import load_workspace
from registry.entities import RunRecord

__all__ = ["runs"]


def _store():
    return load_workspace().open_store()


@click.group()
def runs() -> None:
    """Recorded runs: list, show, search, compare, similar, export, import, deliver."""


runs.add_command(search)
runs.add_command(compare_command)
runs.add_command(similar)
runs.add_command(best)


@runs.command("list")
@click.option("--project", help="Only runs of this project.")
@click.option("--owner", help="Only runs of this owner.")
@click.option("--status", type=click.Choice(["RUNNING", "FINISHED", "FAILED", "KILLED"],
                                            case_sensitive=False))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_runs(project: str | None, owner: str | None, status: str | None, limit: int,
              offset: int, as_json: bool) -> None:
    """Runs, newest first, with their latest metrics."""
    records = _store().list_runs(project_name=project, owner=owner,
                                 status=status.upper() if status else None,
                                 limit=limit, offset=offset)
    if as_json:
        for r in records:
            click.echo(json.dumps(r.to_dict(), default=str))
        return
    if not records:
        click.echo("no runs recorded yet")
        return
    click.echo(runs_table(records))


@runs.command("show")
@click.argument("run_ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="The full record as JSON.")
def show(run_ref: str, as_json: bool) -> None:
    """Everything recorded about RUN (an id, a unique id prefix, or a unique name)."""
    record = _store().get_run(run_ref)
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2, default=str))
        return
    click.echo(_render(record, _store().list_runs(parent_id=record.id, limit=CHILDREN)))


CHILDREN = 20  # nested runs `runs show` lists; search `parent = ID` finds them all


def _render(r: RunRecord, children: Sequence[RunRecord] = ()) -> str:
    out = [f"run {r.id}", _section("", {
        "project": r.project, "name": r.name, "owner": r.owner, "status": r.status,
        "started": timestamp(r.start_time), "ended": timestamp(r.end_time),
        "duration": duration(r.duration), "command": r.command, "entry point": r.entry_point,
        "host": r.hostname, "parent": r.parent_id, "question": r.question,
        "conclusion": r.conclusion})]
    if children:
        more = f" (the newest {CHILDREN}; search 'parent = {r.id[:12]}')" \
            if len(children) == CHILDREN else ""
        out.append(f"children{more}\n" + _indent(table(
            ["id", "name", "status", "started"],
            [(c.id[:12], c.name or "", c.status, timestamp(c.start_time)) for c in children])))
    code = r.code
    out.append(_section("code", {
        "state": code.get("state"), "commit": code.get("commit"), "branch": code.get("branch"),
        "remote": code.get("remote"), "dirty": code.get("dirty"),
        "diff sha256": code.get("diff_sha256")}))
    for d in r.datasets:
        out.append(_section(f"data ({d.role})", {
            "path": d.path, "tracked": d.tracked, "hash": d.hash, "size": d.size,
            "files": d.nfiles, "remote": d.remote, "source": d.source,
            "dirty": d.dirty, "checked by": d.dirty_check, "pushed": _pushed(d)}))
    out.append(_section("params", r.params))
    out.append(_section("tags", r.tags))
    if r.metrics:
        rows = [(k, s.last, s.min, s.max, s.last_step, s.count, s.nonfinite_count or "")
                for k, s in sorted(r.metrics.items())]
        out.append("metrics\n" + _indent(table(
            ["key", "last", "min", "max", "step", "points", "non-finite"], rows)))
    if r.artifacts:
        rows = [(a.name, a.size, a.sha256[:12], a.uri) for a in r.artifacts]
        out.append("artifacts\n" + _indent(table(["name", "bytes", "sha256", "uri"], rows)))
    out.append(_section("hardware", _flat(r.hardware)))
    env = {k: v for k, v in r.environment.items() if k != "all_packages"}
    out.append(_section("environment", _flat(env)))
    if r.notes:
        out.append("notes\n" + _indent(r.notes))
    if r.warnings:
        out.append("warnings\n" + _indent("\n".join(f"- {w}" for w in r.warnings)))
    if r.failure:
        out.append("failure\n" + _indent(r.failure.rstrip()))
    return "\n\n".join(s for s in out if s)


def _pushed(d) -> str | None:
    """Whether others can fetch this data version from the DVC remote, in words."""
    if d.pushed is None:
        return "unknown (no DVC remote, or it did not answer)" if d.tracked else None
    return "yes" if d.pushed else "NO: not in the DVC remote (`dvc push` it so others can fetch it)"


def _section(title: str, fields: dict[str, Any]) -> str:
    shown = {k: v for k, v in fields.items() if v not in (None, "", {}, [])}
    if not shown:
        return ""
    width = max(len(k) for k in shown)
    body = "\n".join(f"{k.ljust(width)}  {value(v)}" for k, v in shown.items())
    return f"{title}\n{_indent(body)}" if title else body


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            flat.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, item in enumerate(v):
                flat.update(_flat(item, f"{prefix}{k}[{i}]."))
        elif k.endswith("_bytes") and isinstance(v, int):
            flat[prefix + k.removesuffix("_bytes")] = f"{v / 2**30:.1f} GiB"
        else:
            flat[prefix + k] = v
    return flat


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@runs.command("export")
@click.argument("run_refs", metavar="[RUN]...", nargs=-1)
@click.option("--project", help="Every run of this project.")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: standard output).")
@click.option("--mov/--no-mov", default=True, show_default=True,
              help="Also write the projects with their MoV definitions and measurements (of "
                   "the named runs only, when runs are named).")
def export(run_refs: tuple[str, ...], project: str | None, output, mov: bool) -> None:
    """Write runs as JSON lines (all runs when none are named), then their projects and MoV."""
    from registry.transfer.backup import FORMAT, MOV_FORMAT, PROJECT_FORMAT, export_mov, export_runs

    store = _store()
    pks = [store.resolve(ref) for ref in run_refs] if run_refs else _all_pks(store, project)
    records = export_runs(store, pks)
    if mov:
        scope = {"run_pks": pks} if run_refs else {"project": project}
        records = itertools.chain(records, export_mov(store, **scope))
    count = collections.Counter()
    for data in records:
        output.write(json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n")
        count[data["format"]] += 1
        count["measurements"] += len(data.get("measurements", ()))
    more = (f", {count[PROJECT_FORMAT]} projects, {count[MOV_FORMAT]} MoV definitions and "
            f"{count['measurements']} measurements") if mov else ""
    click.echo(f"exported {count[FORMAT]} runs{more}", err=True)


def _all_pks(store, project: str | None) -> list[int]:
    return list(reversed(store.run_keys(project_name=project, limit=10**12)))


@runs.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--replace", is_flag=True,
              help="Replace runs whose id already exists, and take the backup's project "
                   "descriptions and MoV definitions over the store's.")
def import_(source, replace: bool) -> None:
    """Read runs, projects and MoV as JSON lines (from a file or standard input)."""
    from registry.transfer.backup import import_runs

    result = import_runs(_store(), source, replace=replace)
    click.echo(f"imported {len(result.imported)} runs, skipped {len(result.skipped)} "
               f"already present, {len(result.errors)} errors", err=True)
    if result.mov.records:
        click.echo(result.mov.summary(), err=True)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    if result.errors:
        sys.exit(1)


@runs.command("deliver")
def deliver() -> None:
    """Send what runs spooled while a store was unreachable: metrics and final statuses
    (the registry store), artifacts (the artifact store)."""
    from registry.tracking.spool import deliver as deliver_spool

    report = deliver_spool(load_workspace())
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)
