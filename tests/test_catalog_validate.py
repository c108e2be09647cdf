"""``validate``: a drafted card checked against its runs, its weights, its DVC file and its
classifier head, and the exit code a team's CI relies on."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import catalog
from catalog import CardProblem
from catalog.cli import catalog as catalog_cli
from registry.config import Workspace
from tests import test_catalog_draft as drafting
from tests.test_catalog_draft import CLASSES, dvc, finetune_run, save_weights, tiny_model

dvc_repo = drafting.dvc_repo  # the shared fixture: a git + DVC repository
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def errors(problems: list[CardProblem]) -> list[CardProblem]:
    return [p for p in problems if p.severity == "error"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.fixture
def drafted(workspace: Workspace) -> Path:
    run_id, _ = finetune_run(workspace)
    return catalog.draft_from_run(run_id, workspace=workspace)


@sqlite_only
def test_weights_that_changed_fail_on_the_sha256_line(drafted: Path,
                                                      workspace: Workspace) -> None:
    save_weights(tiny_model(CLASSES, seed=7), drafted.parent / "model.safetensors", CLASSES)
    found = errors(catalog.validate(drafted, workspace=workspace))
    assert [(p.field, p.line) for p in found] == [("weights.sha256",
                                                   line_of(drafted, "sha256:"))]
    assert "does not match the file" in found[0].message


@sqlite_only
def test_missing_weights_and_unknown_runs(drafted: Path, workspace: Workspace) -> None:
    (drafted.parent / "model.safetensors").unlink()
    edit(drafted, "runs:\n- ", "runs:\n- 0123456789abcdef0123456789abcdef\n- ")  # unknown
    found = {p.field: p for p in errors(catalog.validate(drafted, workspace=workspace))}
    assert set(found) == {"weights.path", "runs[0]"}
    assert "does not exist" in found["weights.path"].message
    assert found["runs[0]"].line == line_of(drafted, "0123456789abcdef")
    assert "no run '0123456789abcdef0123456789abcdef'" in found["runs[0]"].message


@sqlite_only
def test_label_count_must_fit_the_head(drafted: Path, workspace: Workspace) -> None:
    edit(drafted, "  - dent\n", "")
    found = errors(catalog.validate(drafted, workspace=workspace))
    assert {p.field for p in found} == {"input.labels"}
    messages = " / ".join(p.message for p in found)
    assert "lists 2 labels but the classifier fc.weight in the weights has 3 outputs" in messages
    assert "differ from the class names saved with the weights: ok, scratch, dent" in messages


@sqlite_only
@pytest.mark.parametrize(("path", "message"), [
    ("../../outside.safetensors", "inside the card's folder"),
    ("/etc/passwd.safetensors", "inside the card's folder"),
    ("model.pt", "must be a .safetensors file"),
])
def test_weights_paths_that_are_refused(drafted: Path, workspace: Workspace, path: str,
                                        message: str) -> None:
    edit(drafted, "path: model.safetensors", f"path: {path}")
    found = errors(catalog.validate(drafted, workspace=workspace))
    assert any(p.field == "weights.path" and message in p.message for p in found), found


@sqlite_only
def test_a_pickle_dressed_as_safetensors_is_refused(drafted: Path,
                                                    workspace: Workspace) -> None:
    weights = drafted.parent / "model.safetensors"
    weights.write_bytes(pickle.dumps({"fc.weight": [1.0, 2.0]}))
    edit(drafted, re.search(r"sha256: (\w+)", drafted.read_text()).group(1),
         hashlib.sha256(weights.read_bytes()).hexdigest())
    found = errors(catalog.validate(drafted, workspace=workspace))
    assert [p.field for p in found] == ["weights.path"]
    assert "not a safetensors file" in found[0].message


@pytest.mark.slow
@sqlite_only
def test_weights_changed_after_dvc_add(dvc_repo: Workspace) -> None:
    run_id, _ = finetune_run(dvc_repo)
    card = catalog.draft_from_run(run_id, workspace=dvc_repo)
    assert errors(catalog.validate(card, workspace=dvc_repo)) == []
    weights = card.parent / "model.safetensors"
    save_weights(tiny_model(CLASSES, seed=3), weights, CLASSES)
    edit(card, re.search(r"sha256: (\w+)", card.read_text()).group(1),
         hashlib.sha256(weights.read_bytes()).hexdigest())  # the card updated, DVC not
    found = errors(catalog.validate(card, workspace=dvc_repo))
    assert [p.field for p in found] == ["weights.dvc"]
    assert "changed since `dvc add`" in found[0].message
    dvc(dvc_repo.root, "add", "-q", str(weights))
    assert errors(catalog.validate(card, workspace=dvc_repo)) == []


def test_whole_catalog_broken_and_duplicate_cards(workspace: Workspace) -> None:
    cards = Path(__file__).parent / "data" / "cards"
    for folder in ("a", "b"):
        (workspace.catalog_dir / folder).mkdir(parents=True)
        (workspace.catalog_dir / folder / "README.md").write_text(
            (cards / "cairn_complete.md").read_text())
    (workspace.catalog_dir / "c").mkdir()
    (workspace.catalog_dir / "c" / "README.md").write_text("---\nname: [x\n---\n")
    found = errors(catalog.validate(workspace=workspace))
    assert any("cannot check the runs" in p.message for p in found)  # no store yet
    from registry.store import open_store

    open_store(workspace.store_url)  # creates the registry's tables
    found = errors(catalog.validate(workspace=workspace))
    text = "\n".join(map(str, found))
    assert f"{workspace.catalog_dir / 'c' / 'README.md'}:2: error: broken YAML" in text
    assert "scratch-r18@3 is also the card" in text
    assert "no run '0123456789abcdef0123456789abcdef'" in text
    assert "weights file" in text and "does not exist" in text


@sqlite_only
def test_cli_exit_codes(drafted: Path, workspace: Workspace,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    runner = CliRunner()
    out = runner.invoke(catalog_cli, ["validate"])
    assert out.exit_code == 0, out.output  # a draft: warnings only
    assert "warning: " in out.output and "TODO(cairn)" in out.output
    assert runner.invoke(catalog_cli, ["validate", "--strict"]).exit_code == 1
    (drafted.parent / "model.safetensors").unlink()
    out = runner.invoke(catalog_cli, ["validate", str(drafted)])
    assert out.exit_code == 1
    assert f"{drafted}:{line_of(drafted, 'path: model.safetensors')}: error: weights.path" \
        in out.output
    out = runner.invoke(catalog_cli, ["validate", "--json", str(drafted)])
    assert '"field": "weights.path"' in out.output and out.exit_code == 1
    out = runner.invoke(catalog_cli, ["validate", str(drafted.parent / "nowhere")])
    assert out.exit_code == 1 and "no such card file" in out.output


# -- weights written by a `dvc repro` stage: tracked by dvc.lock, not a .dvc file ------------


def write_lock(root: Path, outs: dict[str, list[dict]]) -> None:
    """A dvc.lock as `dvc repro` writes it (schema 2.0), one stage per entry."""
    import yaml

    stages = {name: {"cmd": "python -m draft", "outs": [{"hash": "md5", **o} for o in entries]}
              for name, entries in outs.items()}
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


@pytest.fixture
def staged(dvc_repo: Workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A card drafted inside `dvc repro` (stage `publish`): no nested `dvc add`."""
    run_id, _ = finetune_run(dvc_repo)
    monkeypatch.setenv("DVC_STAGE", "publish")
    monkeypatch.setenv("DVC_ROOT", str(dvc_repo.root))
    card = catalog.draft_from_run(run_id, workspace=dvc_repo)
    monkeypatch.delenv("DVC_STAGE")
    monkeypatch.delenv("DVC_ROOT")
    return card


@sqlite_only
def test_stage_weights_are_checked_against_the_dvc_lock_entry(staged: Path,
                                                               dvc_repo: Workspace) -> None:
    root, weights = dvc_repo.root, staged.parent / "model.safetensors"
    assert not (staged.parent / "model.safetensors.dvc").exists()
    assert catalog.read_card(staged).weights["dvc"] == "../../dvc.lock"
    (problem,) = errors(catalog.validate(staged, workspace=dvc_repo))
    assert problem.field == "weights.dvc" and "does not exist" in problem.message  # no repro yet
    rel = weights.relative_to(root).as_posix()
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()
    write_lock(root, {"data": [{"path": "data/x", "md5": "1" * 32}],
                      "publish": [{"path": rel, "md5": md5, "size": weights.stat().st_size}]})
    assert errors(catalog.validate(staged, workspace=dvc_repo)) == []
    write_lock(root, {"publish": [{"path": rel, "md5": "0" * 32}]})
    (problem,) = errors(catalog.validate(staged, workspace=dvc_repo))
    assert (problem.field, problem.line) == ("weights.dvc", line_of(staged, "dvc: "))
    assert "since `dvc repro` (stage publish in dvc.lock)" in problem.message
    write_lock(root, {"publish": [{"path": "catalog/other/model.safetensors", "md5": md5}]})
    (problem,) = errors(catalog.validate(staged, workspace=dvc_repo))
    assert "no stage of" in problem.message and "outs" in problem.message


@sqlite_only
def test_stage_weights_inside_a_folder_output_use_its_cache_manifest(
        staged: Path, dvc_repo: Workspace) -> None:
    import json

    root, weights = dvc_repo.root, staged.parent / "model.safetensors"
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()
    dir_md5 = "ab" + "c" * 30 + ".dir"
    write_lock(root, {"publish": [{"path": staged.parent.relative_to(root).as_posix(),
                                   "md5": dir_md5, "nfiles": 2}]})
    assert errors(catalog.validate(staged, workspace=dvc_repo)) == []  # not cached: unchecked
    manifest = root / ".dvc" / "cache" / "files" / "md5" / "ab" / dir_md5[2:]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps([{"md5": "f" * 32, "relpath": "README.md"},
                                    {"md5": md5, "relpath": "model.safetensors"}]))
    assert errors(catalog.validate(staged, workspace=dvc_repo)) == []
    manifest.write_text(json.dumps([{"md5": "0" * 32, "relpath": "model.safetensors"}]))
    (problem,) = errors(catalog.validate(staged, workspace=dvc_repo))
    assert problem.field == "weights.dvc" and "0" * 32 in problem.message


@sqlite_only
def test_draft_tracking_choices(dvc_repo: Workspace) -> None:
    from catalog.errors import DraftError

    run_id, _ = finetune_run(dvc_repo)
    with pytest.raises(DraftError, match="track='copy'"):
        catalog.draft_from_run(run_id, track="copy", workspace=dvc_repo)
    card = catalog.draft_from_run(run_id, track="none", workspace=dvc_repo)
    assert "dvc" not in catalog.read_card(card).weights
    problems = catalog.validate(card, workspace=dvc_repo)
    assert any(p.field == "weights" and p.severity == "warning" for p in problems)


# -- one card's folder, the catalog root, and a path with no card ----------------------------

BROKEN = "---\nname: [x\n---\n"


def card_folder(catalog_dir: Path, name: str, text: str) -> Path:
    folder = catalog_dir / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(text)
    return folder


def test_a_card_folder_validates_its_card(workspace: Workspace) -> None:
    broken = card_folder(workspace.catalog_dir, "broken", BROKEN)
    good = card_folder(workspace.catalog_dir, "good",
                       (Path(__file__).parent / "data" / "cards" / "cairn_complete.md")
                       .read_text())
    (workspace.catalog_dir / "README.md").write_text("# Our models\n")  # the catalog's own
    found = catalog.validate(broken, workspace=workspace, check_runs_exist=False)
    assert [(p.path, p.line) for p in errors(found)] == [(str(broken / "README.md"), 2)]
    assert "broken YAML" in errors(found)[0].message
    found = catalog.validate(good, workspace=workspace, check_runs_exist=False)
    assert {Path(p.path).parent for p in found} == {good}  # this card, nothing else
    found = catalog.validate(workspace.catalog_dir, workspace=workspace, check_runs_exist=False)
    paths = {p.path for p in errors(found)}
    assert str(broken / "README.md") in paths and str(good / "README.md") in paths
    assert str(workspace.catalog_dir / "README.md") not in paths


def test_a_card_folder_holds_its_later_versions_too(workspace: Workspace) -> None:
    folder = card_folder(workspace.catalog_dir, "m", BROKEN)
    card_folder(folder, "v2", BROKEN)
    found = errors(catalog.validate(folder, workspace=workspace, check_runs_exist=False))
    assert sorted(p.path for p in found) == [str(folder / "README.md"),
                                             str(folder / "v2" / "README.md")]


def test_a_path_without_a_card_is_an_error(workspace: Workspace) -> None:
    empty = workspace.catalog_dir / "empty"
    empty.mkdir(parents=True)
    (problem,) = catalog.validate(empty, workspace=workspace)
    assert problem.severity == "error" and "no cards found" in problem.message
    (problem,) = catalog.validate(workspace=workspace)  # the workspace's catalog: none yet
    assert problem.severity == "warning"


def test_cli_on_a_card_folder(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    broken = card_folder(workspace.catalog_dir, "broken", BROKEN)
    runner = CliRunner()
    out = runner.invoke(catalog_cli, ["validate", str(broken)])
    assert out.exit_code == 1 and f"{broken / 'README.md'}:2: error: broken YAML" in out.output
    (broken / "README.md").unlink()
    out = runner.invoke(catalog_cli, ["validate", str(broken)])
    assert out.exit_code == 1 and "no cards found" in out.output


def test_validate_dot_inside_a_card_folder(tmp_path: Path) -> None:
    (tmp_path / "cairn.toml").write_text(f'store = "sqlite:///{tmp_path}/r.db"\n'
                                         'catalog = "catalog"\n')
    broken = card_folder(tmp_path / "catalog", "broken", BROKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    out = subprocess.run([sys.executable, "-m", "registry.cli", "catalog", "validate", "."],
                         cwd=broken, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "README.md:2: error: broken YAML" in out.stdout
    (broken / "README.md").write_text(BROKEN.replace("[x", "broken"))
    out = subprocess.run([sys.executable, "-m", "registry.cli", "catalog", "validate", ".",
                          "--no-runs"], cwd=broken, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1
    assert "README.md:1: error: missing required field version" in out.stdout, out.stdout
