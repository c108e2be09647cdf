"""What the demo recorded, and where to look at it, as text for the terminal."""

from __future__ import annotations

from demo.history import History
from registry.config import Workspace
from registry.entities import RunRecord

__all__ = ["summary"]

_RUNS_SHOWN = 12


def summary(ws: Workspace, history: History, projects: list[str], seconds: float) -> str:
    """The summary printed at the end of ``cairn demo``."""
    parts = [f"\nCairn demo: done in {seconds:.0f} s; everything is in {ws.root}",
             f"  registry  {ws.store_url}", _runs(ws, projects), _tried(history),
             _mov(ws, projects, history), _catalog(ws, history), _reports(ws, history),
             _mlflow(history)]
    return "\n".join(parts)


def _runs(ws: Workspace, projects: list[str]) -> str:
    import registry

    lines = ["\nRuns (code version and DVC data versions recorded with each):"]
    for project in projects:
        for r in registry.list_runs(project, limit=_RUNS_SHOWN, workspace=ws):
            full = registry.get_run(r.id, workspace=ws)
            lines.append(f"  {r.id[:8]}  {project:<18} {r.owner:<6} {r.name or '-':<14} "
                         f"{full.params.get('model', '-')!s:<22} {_acc(full)}  "
                         f"commit {str(full.code.get('commit') or '-')[:8]}"
                         f"{' (dirty)' if full.code.get('dirty') else ''}  {_data(full)}")
    return "\n".join(lines)


def _acc(run: RunRecord) -> str:
    summary = run.metrics.get("eval/accuracy")
    return f"accuracy {summary.last:.3f}" if summary and summary.last is not None else ""


def _data(run: RunRecord) -> str:
    seen = {}
    for d in run.datasets:
        seen.setdefault(d.path, d.hash)
    return ", ".join(f"{p}@{(h or 'untracked')[:8]}" for p, h in seen.items())


def _tried(history: History) -> str:
    new, old = history.duplicate, history.original
    lines = [f"\nHas this been tried? {new.owner} ran {old.owner}'s experiment {old.name} again "
             f"(run {new.id[:8]}) and was warned at its start:"]
    lines += [f"  cairn: {w}" for w in history.warnings] or ["  (no warning was recorded)"]
    lines.append(f"  She went on: both runs are on record (`cairn runs similar {new.id[:8]}`, "
                 "the dashboard's overlap page).")
    return "\n".join(lines)


def _mov(ws: Workspace, projects: list[str], history: History) -> str:
    from registry.knowledge.mov import mov_progress

    lines = ["\nMeasured organisational value:"]
    for project in projects:
        for p in mov_progress(project, workspace=ws):
            way = f"{p.percent_to_target:.0f}% of the way" if p.percent_to_target is not None \
                else "no measurement yet"
            lines.append(f"  {project} {p.name}: best {_num(p.best)} {p.unit} (baseline "
                         f"{_num(p.baseline)}, target {_num(p.target)}: {way}), "
                         f"{p.count} measurements")
    lines.append(f"  from the plant, no run: {history.plant_report}")
    return "\n".join(lines)


def _catalog(ws: Workspace, history: History) -> str:
    errors = [p for p in history.problems if p.severity == "error"]
    warnings = len(history.problems) - len(errors)
    lines = ["\nCatalog (cairn catalog search / show):"]
    lines += [f"  {c.ref:<18} [{c.status}] {c.owner}, {c.backbone}  {_rel(ws, c.path)}"
              for c in history.cards]
    lines.append(f"  cairn catalog validate: {len(errors)} errors, {warnings} warnings "
                 "(drafts keep TODO(cairn) for their owner to write)")
    lines += [f"  error: {p.path}:{p.line or '-'}: {p.message}" for p in errors]
    lines.append("  reuse one by name: zoo.create(\"catalog:NAME\", num_classes=...)")
    return "\n".join(lines)


def _reports(ws: Workspace, history: History) -> str:
    lines = ["\nHandover reports (cairn report PROJECT):"]
    lines += [f"  {_rel(ws, r.markdown)}  (+ {r.html.name})" for r in history.reports]
    return "\n".join(lines)


def _mlflow(history: History) -> str:
    result = history.mlflow
    return (f"\nMLflow: {len(result.created)} runs created, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged, {len(result.models)} models registered in "
            f"{history.mlflow_uri}\n  browse it: mlflow ui --backend-store-uri "
            f"{history.mlflow_uri}")


def _rel(ws: Workspace, path: object) -> str:
    from pathlib import Path

    try:
        return Path(str(path)).relative_to(ws.root).as_posix()
    except ValueError:
        return str(path)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
