"""The demo pipeline's stages; ``dvc.yaml`` runs each as ``python -P -m demo stage NAME``
from the repository root, with the owner in ``CAIRN_OWNER``.

- ``pretrain``: alice's in-house backbone, trained from scratch on the surface images;
- ``publish``: its model card, drafted from the run and finished by alice's review;
- ``weld-scratch``: bob's weld baseline from scratch;
- ``weld-transfer``: bob's weld model from alice's card, reused by name (``catalog:NAME``);
- ``cards``: draft cards of bob's two runs, left for him to finish.

A training stage records its run through :func:`zoo.finetune`, measures the project's MoV
from the run's evaluation (linked to the run, with the figures as evidence) and writes
``demo/runs/<stage>.json`` (the run id, for later stages) and ``demo/metrics/<stage>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demo import layout
from demo.errors import DemoSetupError, DemoStepError

__all__ = ["CARD_STAGES", "STAGES", "TRAINING", "projects", "run_stage"]

TRAINING = ("pretrain", "weld-scratch", "weld-transfer")
CARD_STAGES = ("weld-scratch", "weld-transfer")  # runs whose cards `cards` drafts
STAGES = (*TRAINING, "publish", "cards")


def run_stage(name: str, out: Path | None = None) -> dict[str, Any]:
    """Run stage ``name`` in the working directory (the repository root); ``out`` puts a
    training stage's record elsewhere than ``demo/runs`` (a re-run by someone else)."""
    params = layout.load_params()
    if name in TRAINING:
        return train(name, params, out)
    if name == "publish":
        return publish(params)
    if name == "cards":
        return draft_cards()
    raise DemoSetupError(f"unknown stage {name!r}", f"choose one of {', '.join(STAGES)}")


def projects(params: dict[str, Any]) -> list[str]:
    """The projects the pipeline's fine-tunes record into."""
    return sorted({str(layout.section(params, stage).get("project")) for stage in TRAINING})


# -- training ----------------------------------------------------------------------------------


def train(stage: str, params: dict[str, Any], out: Path | None = None) -> dict[str, Any]:
    """Fine-tune as params.yaml's section ``stage`` says; record MoV; write the records."""
    import tempfile

    import zoo

    options = _finetune_options(stage, params)
    # The run keeps the best weights as its artifact; resumable checkpoints are not needed.
    with tempfile.TemporaryDirectory(prefix=f"cairn-demo-{stage}-") as checkpoints:
        result = zoo.finetune(**options, run_name=stage, checkpoint_dir=checkpoints,
                              progress=False)
    if result.evaluation is None:
        raise DemoStepError(stage, f"run {result.run_id} recorded no evaluation")
    project = options["project"]
    measured = _log_value(result, project, layout.section(params, "value"))
    record = {"stage": stage, "run_id": result.run_id, "project": project,
              "model": options["model"], "best_val_accuracy": result.best_metric,
              "accuracy": result.evaluation.accuracy, "n": result.evaluation.n,
              "class_names": list(result.evaluation.class_names),
              "recall": list(result.evaluation.recall), "mov": measured}
    metrics = {"accuracy": result.evaluation.accuracy,
               "best_val_accuracy": result.best_metric, measured["name"]: measured["value"],
               **measured["metrics"]}
    _write_json((out or layout.RUNS) / f"{stage}.json", record)
    if out is None:
        _write_json(layout.METRICS / f"{stage}.json", metrics)
    return record


def _finetune_options(stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """zoo.finetune's arguments from params.yaml (section ``stage`` and ``train``)."""
    spec, common = layout.section(params, stage), layout.section(params, "train")
    try:
        return {"model": str(spec["model"]), "data": layout.DATA / str(spec["task"]),
                "epochs": int(spec["epochs"]), "lr": float(spec["lr"]),
                "pretrained": bool(spec.get("pretrained", True)),
                "batch_size": int(common["batch_size"]),
                "image_size": int(common["image_size"]), "seed": int(common["seed"]),
                "project": str(spec["project"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise DemoSetupError(f"params.yaml sections {stage} and train: {exc!r}",
                             "see the repository's params.yaml") from exc


def _log_value(result: Any, project: str, value_params: dict[str, Any]) -> dict[str, Any]:
    """The project's MoV from the run's evaluation, recorded against the run."""
    import registry
    from demo.value import measure
    from registry.knowledge.mov import log_mov

    ws = registry.load_workspace()
    found = measure(project, result.evaluation, value_params)
    store = ws.open_store()
    owner = registry.get_run(result.run_id, workspace=ws).owner
    evidence = f"run {result.run_id[:8]}: {found.how}"
    logged = log_mov(store, run_pk=store.resolve(result.run_id), project=project,
                     name=found.name, value=found.value, evidence=evidence, who=owner,
                     workspace=ws)
    return {"name": found.name, "value": found.value, "unit": logged.unit,
            "evidence": evidence, "metrics": found.metrics}


# -- cards -------------------------------------------------------------------------------------


def publish(params: dict[str, Any]) -> dict[str, Any]:
    """Draft the card of alice's pretrain run and finish it with her review."""
    import catalog
    from demo.review import finish_card

    name = str(layout.section(params, "publish")["card"])
    record = _read_json(layout.RUNS / "pretrain.json")
    path = catalog.draft_from_run(record["run_id"], name=name)
    finish_card(path, _facts(name, record))
    catalog.index()
    return {"card": name, "path": str(path), "run_id": record["run_id"]}


def _facts(name: str, record: dict[str, Any]) -> dict[str, Any]:
    mov = record["mov"]
    recall = ", ".join(f"{c} {r:.0%}" for c, r in zip(record["class_names"], record["recall"],
                                                       strict=True))
    return {"name": name, "backbone": record["model"], "accuracy": record["accuracy"],
            "n": record["n"], "labels": ", ".join(f"`{c}`" for c in record["class_names"]),
            "recall": recall,
            "mov": f"{mov['name'].replace('_', ' ')} {mov['value']:.1f} {mov['unit']}"}


def draft_cards() -> dict[str, Any]:
    """Draft cards of bob's weld runs (status draft: he finishes them later)."""
    import catalog

    drafted = {}
    for stage in CARD_STAGES:
        record = _read_json(layout.RUNS / f"{stage}.json")
        drafted[stage] = str(catalog.draft_from_run(record["run_id"], name=stage))
    return drafted


# -- files ---------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoStepError(path.stem, f"{path} does not exist: run `dvc repro` (the stage "
                                       "that writes it comes first)") from None
