"""Drafting a card from a fine-tune run: weights copied and DVC-tracked, the run's record in
the front matter and body, TODO(cairn) where a person must write.

The helpers here (a git + DVC repository, a recorded fine-tune run with tiny timm weights)
are shared by the other catalog tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import catalog
import registry
from catalog.cli import catalog as catalog_cli
from catalog.errors import CardExistsError, DraftError
from registry.config import Workspace
from tests.conftest import git

CLASSES = ["ok", "scratch", "dent"]
# The store's part (indexing) is tested on both dialects elsewhere; drafts use SQLite only.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def dvc(root: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True,
                          capture_output=True, text=True, env=os.environ).stdout


def init_git_dvc(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``root`` as a git + DVC repository, with DVC's and git's own settings kept out."""
    for name in ("GLOBAL_CONFIG", "SYSTEM_CONFIG", "SITE_CACHE"):
        monkeypatch.setenv(f"DVC_{name}_DIR", str(root.parent / f"dvc-{name.lower()}"))
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "t")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "t@example.com")
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    (root / ".gitignore").write_text("artifacts/\nstore/\n.cairn/\n*.safetensors\n")


@pytest.fixture
def dvc_repo(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The workspace as a git + DVC repository with a DVC-tracked training folder."""
    root = workspace.root
    init_git_dvc(root, monkeypatch)
    train = root / "data" / "train"
    for label in CLASSES:
        (train / label).mkdir(parents=True)
        (train / label / "0.png").write_bytes(label.encode() * 50)
    dvc(root, "add", "-q", "data/train")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data")
    return workspace


def tiny_model(classes: list[str], seed: int = 0) -> Any:
    import torch

    from zoo._compat import import_timm

    torch.manual_seed(seed)
    return import_timm().create_model("test_resnet", pretrained=False, num_classes=len(classes))


def save_weights(model: Any, path: Path, classes: list[str]) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"model": "test_resnet",
                                          "class_names": json.dumps(classes)})
    return path


def finetune_run(ws: Workspace, *, name: str = "scratch-r18", classes: list[str] = CLASSES,
                 project: str = "defects", data: str | None = None, seed: int = 0,
                 weights: bool = True, **text: str) -> tuple[str, Any]:
    """A run recorded the way zoo.finetune records one (contract 1); returns (id, model)."""
    model = tiny_model(classes, seed)
    params = {"model": "test_resnet", "num_classes": len(classes), "class_names": classes,
              "image_size": 64, "framework": "torch", "lr": 1e-3, "epochs": 2}
    with registry.start_run(project, name, params=params, tags={"cairn.kind": "finetune"},
                            question=text.get("question"), notes=text.get("notes"),
                            workspace=ws) as run:
        if data:
            run.use_data(data, role="train")
        for epoch, (acc, loss) in enumerate([(0.61, 0.9), (0.84 + seed / 100, 0.4)]):
            run.log_metrics({"val/accuracy": acc, "val/loss": loss}, step=epoch)
        run.log_metrics({"eval/accuracy": 0.83 + seed / 100, "eval/n": 30.0})
        if weights:
            run.log_artifact(save_weights(model, ws.root / f"{name}.safetensors", classes),
                             "model.safetensors")
        if text.get("conclusion"):
            run.set_conclusion(text["conclusion"])
    return run.id, model


@pytest.mark.slow
def test_draft_from_run_writes_a_complete_tracked_card(dvc_repo: Workspace) -> None:
    ws = dvc_repo
    registry.define_mov("defects", "escape_rate", unit="ppm", direction="lower", baseline=420,
                        target=100, workspace=ws)
    run_id, _ = finetune_run(ws, data="data/train", question="Does test_resnet find dents?",
                             conclusion="Good enough for line 3.")
    registry.record_mov("defects", "escape_rate", 210, evidence="audit", workspace=ws)
    from registry.knowledge.mov import log_mov
    from registry.store import open_store

    store = open_store(ws.store_url)
    log_mov(store, run_pk=store.resolve(run_id), project="defects", name="escape_rate",
            value=180, who="tester", workspace=ws)

    path = catalog.draft_from_run(run_id[:8], workspace=ws)
    assert path == ws.catalog_dir / "scratch-r18" / "README.md"
    card = catalog.read_card(path)
    fm = card.front_matter
    assert (card.name, card.version, card.status) == ("scratch-r18", "1", "draft")
    assert card.runs == [run_id] and card.backbone == "test_resnet"
    assert card.input == {"size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                          "interpolation": "bilinear", "crop_pct": 0.95, "labels": CLASSES}
    record = registry.get_run(run_id, workspace=ws)
    artifact = next(a for a in record.artifacts if a.name == "model.safetensors")
    assert fm["weights"] == {"path": "model.safetensors", "sha256": artifact.sha256,
                             "dvc": "model.safetensors.dvc"}
    assert (path.parent / "model.safetensors.dvc").is_file()
    result = fm["model-index"][0]["results"][0]
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"accuracy": 0.83}
    train = record.datasets[0]
    assert result["dataset"] == {"type": "data/train", "name": "data/train",
                                 "revision": train.hash}
    assert "datasets" not in fm  # it names dataset cards; data/train has none (a note says so)
    assert fm["mov"] == [{"name": "escape_rate", "value": 180.0, "unit": "ppm",
                          "baseline": 420.0, "target": 100.0, "run": run_id,
                          "measured": fm["mov"][0]["measured"]}]
    for text in ("Does test_resnet find dents?", "Good enough for line 3.", train.hash,
                 'zoo.create("catalog:scratch-r18@1", num_classes=3)', "| lr | 0.001 |"):
        assert text in card.body

    problems = catalog.validate(path, workspace=ws)
    assert [p for p in problems if p.severity == "error"] == []
    assert any("TODO(cairn)" in p.message for p in problems)
    assert catalog.search("scratch-r18", workspace=ws)[0].status == "draft"  # indexed at once


@pytest.mark.slow
@sqlite_only
def test_a_second_draft_is_the_next_version(dvc_repo: Workspace) -> None:
    ws = dvc_repo
    first, _ = finetune_run(ws)
    second, _ = finetune_run(ws, seed=1)
    catalog.draft_from_run(first, workspace=ws)
    path = catalog.draft_from_run(second, workspace=ws)
    assert path == ws.catalog_dir / "scratch-r18" / "v2" / "README.md"
    assert catalog.get("scratch-r18", workspace=ws).version == "2"
    with pytest.raises(CardExistsError):
        from catalog._draft import draft

        draft(second, version="2", workspace=ws)


@sqlite_only
def test_draft_without_dvc_says_so(workspace: Workspace) -> None:
    run_id, _ = finetune_run(workspace)
    from catalog._draft import draft

    result = draft(run_id, name="plain", workspace=workspace)
    assert any("not in a DVC repository" in n for n in result.notes)
    problems = catalog.validate(result.path, workspace=workspace)
    assert any("not tracked by DVC" in p.message and p.severity == "warning"
               for p in problems)


@sqlite_only
@pytest.mark.parametrize(("change", "message"), [
    ({"weights": False}, "logged no model.safetensors"),
    ({"name": "bad name!"}, "card name"),
])
def test_runs_that_cannot_be_drafted(workspace: Workspace, change: dict[str, Any],
                                     message: str) -> None:
    run_id, _ = finetune_run(workspace, weights=change.get("weights", True))
    with pytest.raises(DraftError, match=message):
        catalog.draft_from_run(run_id, name=change.get("name"), workspace=workspace)


@sqlite_only
def test_run_without_class_names_cannot_be_drafted(workspace: Workspace) -> None:
    with registry.start_run("defects", "no-classes", params={"model": "test_resnet"},
                            workspace=workspace) as run:
        pass
    with pytest.raises(DraftError, match="class_names, image_size"):
        catalog.draft_from_run(run.id, workspace=workspace)


@pytest.mark.slow
@sqlite_only
def test_cli_new(dvc_repo: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _ = finetune_run(dvc_repo)
    monkeypatch.setenv("CAIRN_STORE", dvc_repo.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", dvc_repo.artifact_root)
    out = CliRunner().invoke(catalog_cli, ["new", "--from-run", run_id[:8], "--name", "cli"])
    assert out.exit_code == 0, out.output
    assert "drafted cli@1" in out.output
    assert (dvc_repo.catalog_dir / "cli" / "README.md").is_file()
    assert (dvc_repo.catalog_dir / "cli" / "model.safetensors.dvc").is_file()  # dvc add
    out = CliRunner().invoke(catalog_cli, ["new", "--from-run", run_id[:8], "--name", "plain",
                                           "--track", "none"])
    assert out.exit_code == 0, out.output
    assert not (dvc_repo.catalog_dir / "plain" / "model.safetensors.dvc").exists()
    out = CliRunner().invoke(catalog_cli, ["new", "--from-run", "nope"])
    assert out.exit_code == 1 and "no run matches 'nope'" in out.output
