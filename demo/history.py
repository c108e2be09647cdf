"""The team's history on top of the pipeline, as people would add it afterwards.

- carol, new on weld-qa, starts the experiment bob already ran (she runs his stage's command
  by hand: same code, params and data) and is warned, at run start, that bob ran it; she
  goes on, so both runs are on record and the dashboard shows the overlap;
- alice writes down the question her backbone answers, bob his conclusion on transfer;
- quality records a MoV measurement from a plant report (no run);
- the catalog is indexed and validated, handover reports written, every run exported to a
  local MLflow store.

Each step is done once: run again, it finds what it did and leaves it (carol's run by the
warning that names bob's run, the plant report by its evidence; reports are rewritten and
the MLflow export only sends what changed).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo import layout
from demo.errors import DemoStepError
from demo.pipeline import command, environment
from demo.stages import projects
from registry.config import Workspace
from registry.entities import RunRecord

__all__ = ["DUPLICATED_STAGE", "NEWCOMER", "History", "record"]

NEWCOMER = "carol"
DUPLICATED_STAGE = "weld-scratch"


@dataclass
class History:
    """What the team-history steps recorded, for the summary."""

    original: RunRecord
    duplicate: RunRecord
    warnings: list[str]
    plant_report: str
    cards: list[Any] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)
    mlflow_uri: str = ""
    mlflow: Any = None


def record(ws: Workspace) -> History:
    """Every team-history step, in order, on the workspace ``ws`` (rooted where dvc.yaml
    is)."""
    import catalog

    root, params = ws.root, layout.load_params(ws.root)
    original, duplicate = newcomer_duplicates(ws)
    warnings = [w for w in duplicate.warnings if original.id[:8] in w]
    annotate(ws, params)
    plant = plant_report(ws, params)
    catalog.index(workspace=ws)
    problems = catalog.validate(workspace=ws)
    reports = [catalog.report(p, out=root / layout.REPORTS, workspace=ws)
               for p in projects(params)]
    uri, exported = export_mlflow(ws)
    return History(original, duplicate, warnings, plant, catalog.list_cards(workspace=ws),
                   problems, reports, uri, exported)


def newcomer_duplicates(ws: Workspace) -> tuple[RunRecord, RunRecord]:
    """(bob's run, carol's run of the same experiment): found, or run now."""
    import registry

    original = registry.get_run(_stage_run(ws.root, DUPLICATED_STAGE), workspace=ws)
    for earlier in registry.list_runs(original.project, owner=NEWCOMER, limit=1000,
                                      workspace=ws):
        if any(original.id[:8] in w for w in earlier.warnings):
            return original, registry.get_run(earlier.id, workspace=ws)
    out = layout.TEAM / NEWCOMER
    print(f"\n{NEWCOMER} runs `python -P -m demo stage {DUPLICATED_STAGE}`, the experiment "
          f"{original.owner} ran:", flush=True)
    env = {**environment(), "CAIRN_OWNER": NEWCOMER}
    for name in ("DVC_STAGE", "DVC_ROOT"):  # by hand, not inside `dvc repro`
        env.pop(name, None)
    argv = command("stage", DUPLICATED_STAGE, "--out", str(out))
    done = subprocess.run(argv, cwd=ws.root, env=env, check=False)
    if done.returncode != 0:
        raise DemoStepError(f"{NEWCOMER}'s run", f"exit status {done.returncode}")
    run_id = json.loads((ws.root / out / f"{DUPLICATED_STAGE}.json").read_text())["run_id"]
    return original, registry.get_run(run_id, workspace=ws)


def annotate(ws: Workspace, params: dict[str, Any]) -> None:
    """alice's question on her backbone run; bob's conclusion on his transfer run (from
    the two weld runs' accuracies). Set once; a person's later edit is kept."""
    import registry

    store = ws.open_store()
    pretrain = registry.get_run(_stage_run(ws.root, "pretrain"), workspace=ws)
    if not pretrain.question:
        store.update_run(store.resolve(pretrain.id), question=(
            "Does a backbone trained on our own surface images make new inspection tasks "
            "cheaper to start than training from scratch?"))
    scratch, transfer = (_stage_record(ws.root, s) for s in ("weld-scratch", "weld-transfer"))
    run = registry.get_run(transfer["run_id"], workspace=ws)
    if not run.conclusion:
        gain = transfer["accuracy"] - scratch["accuracy"]
        store.update_run(store.resolve(run.id), conclusion=(
            f"Starting from {transfer['model']} gives {transfer['accuracy']:.1%} weld accuracy "
            f"after {layout.section(params, 'weld-transfer')['epochs']} epochs, against "
            f"{scratch['accuracy']:.1%} from scratch (run {scratch['run_id'][:8]}): "
            f"{gain * 100:+.1f} points."))


def plant_report(ws: Workspace, params: dict[str, Any]) -> str:
    """The plant's own measurement of a MoV (no run), recorded once; a line saying so."""
    from registry.knowledge.mov import mov_progress, record_mov

    report = layout.section(params, "history").get("plant_report") or {}
    try:
        project, name = str(report["project"]), str(report["mov"])
        value, evidence, who = report["value"], str(report["evidence"]), str(report["who"])
    except KeyError as exc:
        raise DemoStepError("plant report", f"params.yaml history.plant_report lacks {exc}"
                            ) from exc
    for progress in mov_progress(project, workspace=ws):
        if any(m.name == name and m.evidence == evidence for m in progress.measurements):
            return f"{project} {name} = {value} (already recorded: {evidence})"
    recorded = record_mov(project, name, value, evidence=evidence, who=who, workspace=ws)
    return f"{project} {name} = {recorded.value:g} {recorded.unit} by {who}: {evidence}"


def export_mlflow(ws: Workspace) -> tuple[str, Any]:
    """Every run of the workspace into the MLflow store under demo/mlflow (incremental)."""
    from registry.transfer.mlflow import export_runs

    folder = ws.root / layout.MLFLOW
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    print(f"\nexporting the runs to MLflow at {uri} ...", flush=True)
    return uri, export_runs(uri, workspace=ws)


def _stage_record(root: Path, stage: str) -> dict[str, Any]:
    path = root / layout.RUNS / f"{stage}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoStepError(stage, f"{path} does not exist: run `dvc repro` first") from None


def _stage_run(root: Path, stage: str) -> str:
    return str(_stage_record(root, stage)["run_id"])
