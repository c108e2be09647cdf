"""`cairn demo` end to end: the repository's DVC pipeline and the team's history in a fresh
git repository, then what it recorded, read back through the registry, the catalog, DVC's
dvc.lock and MLflow's own client; then a second run that serves the dashboard and stops on
Ctrl-C without recording anything twice.

The demo runs as a subprocess of this interpreter (`python -P -m demo run`, the same
command as `cairn demo`), so DVC, torch and the registry behave as they do for a user. The
temporary repository holds what a clone would: the demo package too, so `-P` (the working
directory off sys.path) is what makes `-m demo` the installed package there, as in dvc.yaml.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from registry.config import Workspace, load_workspace
from tests._procs import free_port
from tests._signals import default_sigint
from tests.conftest import git

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# The workspace settings the demo needs: the repository's own [tool.cairn] tables (the last
# part of its pyproject.toml), given to the temporary repository as its pyproject.toml.
PYPROJECT = REPO / "pyproject.toml"
CONFIG = PYPROJECT.read_text()[PYPROJECT.read_text().index("[tool.cairn]"):]
PROJECTS = {"surface-inspection": {"alice"}, "weld-qa": {"bob", "carol"}}
CARD = "surface-r10t"
DEMO = [sys.executable, "-P", "-m", "demo", "run"]  # `cairn demo`
# What a clone of the repository holds that the demo uses: its pipeline and its code.
CLONED = ["dvc.yaml", "params.yaml", ".gitignore", "demo/.gitignore",
          *sorted(f"demo/{p.name}" for p in (REPO / "demo").glob("*.py"))]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "DVC_"))}
    env.update(HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="3",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return env


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """A fresh clone-like repository (pipeline, params, the demo package, .dvc committed)
    after one demo run without serving: (root, the demo's output, its wall time in s)."""
    root = tmp_path_factory.mktemp("demo")
    git(root, "init", "-q")
    for name in CLONED:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, root / name)
    (root / "pyproject.toml").write_text(CONFIG)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, env=_env(),
                   check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the demo pipeline")
    started = time.monotonic()
    done = subprocess.run([*DEMO, "--no-serve"], cwd=root, env=_env(), capture_output=True,
                          text=True, timeout=900)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    print(f"demo wall time: {seconds:.1f} s")
    return root, output, seconds


@pytest.fixture(scope="module")
def ws(demo_repo: tuple[Path, str, float]) -> Workspace:
    return load_workspace(demo_repo[0], env={})


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def _locked_md5(root: Path, stage: str, path: str) -> str:
    return next(o["md5"] for o in _lock(root)[stage]["outs"] if o["path"] == path)


def _runs(ws: Workspace) -> list:
    import registry

    return [registry.get_run(r.id, workspace=ws) for project in PROJECTS
            for r in registry.list_runs(project, limit=100, workspace=ws)]


def test_git_tracks_the_demo_code_and_ignores_all_it_made(demo_repo) -> None:
    root = demo_repo[0]
    assert git(root, "ls-files", "demo").split() == [n for n in CLONED if n.startswith("demo/")]
    untracked = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert untracked == ["?? dvc.lock"]  # DVC's record of the pipeline, for git to keep


def test_runs_record_code_and_dvc_data_versions(demo_repo, ws: Workspace) -> None:
    root = demo_repo[0]
    head = git(root, "rev-parse", "HEAD").strip()
    runs = _runs(ws)
    assert {(r.project, r.owner) for r in runs} == {(p, o) for p, owners in PROJECTS.items()
                                                   for o in owners}
    for run in runs:
        assert run.status == "FINISHED"
        assert run.code["commit"] == head and run.code["dirty"] is False, run.code
        task = "surface" if run.project == "surface-inspection" else "weld"
        train = [d for d in run.datasets if d.role == "train"]
        assert [d.path for d in train] == [f"demo/data/{task}"]
        assert train[0].hash == _locked_md5(root, f"data@{task}", f"demo/data/{task}")
        assert train[0].tracked and train[0].dirty is False
        assert run.metrics["eval/accuracy"].last is not None


def test_pipeline_runs_record_their_stage_deps_from_dvc_lock(demo_repo, ws: Workspace) -> None:
    root = demo_repo[0]
    transfer = next(r for r in _runs(ws) if r.name == "weld-transfer")
    assert transfer.params["model"] == f"catalog:{CARD}"
    weights = f"demo/catalog/{CARD}/model.safetensors"
    deps = {d.path: d.hash for d in transfer.datasets if d.role == "dep"}
    assert deps[weights] == _locked_md5(root, "publish", weights)
    assert deps["demo/data/weld"] == _locked_md5(root, "data@weld", "demo/data/weld")


def test_the_published_card_is_reviewed_and_every_card_validates(demo_repo, ws) -> None:
    import catalog

    problems = catalog.validate(workspace=ws)
    assert [p for p in problems if p.severity == "error"] == []
    cards = {c.name: c for c in catalog.list_cards(workspace=ws)}
    assert set(cards) == {CARD, "weld-scratch", "weld-transfer"}
    card = cards[CARD]
    assert card.status == "reviewed" and card.owner == "alice"
    assert (card.folder / card.weights["dvc"]).resolve() == demo_repo[0] / "dvc.lock"
    assert cards["weld-transfer"].backbone == f"catalog:{CARD}"
    # Tampered weights are caught against dvc.lock as well as the card's sha256.
    weights = card.weights_path
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-4] + b"\0\0\0\0")
        found = {p.field for p in catalog.validate(card.path, workspace=ws)
                 if p.severity == "error"}
        assert {"weights.sha256", "weights.dvc"} <= found
    finally:
        weights.write_bytes(original)


def test_mov_progress_from_runs_and_a_plant_report(ws: Workspace) -> None:
    from registry.knowledge.mov import mov_progress

    runs = {r.id: r for r in _runs(ws)}
    for project in PROJECTS:
        (progress,) = mov_progress(project, workspace=ws)
        assert progress.count >= 1 and progress.percent_to_target is not None
        from_runs = [m for m in progress.measurements if m.run_id]
        assert from_runs and all(m.run_id in runs and m.run_id[:8] in m.evidence
                                 for m in from_runs)
    (surface,) = mov_progress("surface-inspection", workspace=ws)
    plant = [m for m in surface.measurements if m.run_id is None]
    assert len(plant) == 1 and plant[0].who == "dana" and "Plant 3" in plant[0].evidence


def test_carol_is_warned_that_bob_ran_it(demo_repo, ws: Workspace) -> None:
    runs = _runs(ws)
    bob = next(r for r in runs if r.owner == "bob" and r.name == "weld-scratch")
    (carol,) = [r for r in runs if r.owner == "carol"]
    warned = [w for w in carol.warnings
              if "the same experiment was run by bob" in w and bob.id[:8] in w]
    assert warned, carol.warnings
    assert carol.params == bob.params and carol.code["commit"] == bob.code["commit"]
    assert warned[0] in demo_repo[1]  # shown in the summary


def test_handover_reports(demo_repo) -> None:
    folder = demo_repo[0] / "demo" / "reports"
    for project, owners in PROJECTS.items():
        text = (folder / f"{project}-handover.md").read_text()
        assert all(owner in text for owner in owners)
        assert "<h1" in (folder / f"{project}-handover.html").read_text()
    assert "reinspection_minutes" in (folder / "weld-qa-handover.md").read_text()
    assert CARD in (folder / "surface-inspection-handover.md").read_text()


def test_mlflow_export_is_readable_by_mlflow(demo_repo, ws: Workspace) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{demo_repo[0] / 'demo' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    exported = client.search_runs(experiments, max_results=1000)
    ours = {r.id: r for r in _runs(ws)}
    by_cairn = {r.data.tags.get("cairn.run_id"): r for r in exported}
    assert set(ours) <= set(by_cairn)
    transfer = next(r for r in ours.values() if r.name == "weld-transfer")
    mirrored = by_cairn[transfer.id]
    assert mirrored.data.params["model"] == f"catalog:{CARD}"
    assert mirrored.data.metrics["eval/accuracy"] == pytest.approx(
        transfer.metrics["eval/accuracy"].last)


def test_the_demo_config_is_all_of_the_repositorys() -> None:
    config = tomllib.loads(CONFIG)
    assert list(config) == ["tool"] and list(config["tool"]) == ["cairn"]
    assert config["tool"]["cairn"] == tomllib.loads(PYPROJECT.read_text())["tool"]["cairn"]


def test_second_run_serves_and_records_nothing_twice(demo_repo, ws: Workspace) -> None:
    from registry.knowledge.mov import mov_progress

    root = demo_repo[0]
    before = (len(_runs(ws)), [p.count for p in mov_progress(workspace=ws)])
    port = free_port()
    proc = subprocess.Popen([*DEMO, "--port", str(port)], cwd=root, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=default_sigint)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if f"http://127.0.0.1:{port}" in line and "Ctrl-C" in line:
                break
        else:
            pytest.fail("".join(lines[-80:]))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as answer:
            assert answer.status == 200
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines)
    assert proc.returncode == 0, output[-4000:]
    assert "stopping the dashboard" in output
    assert not re.search(r"Running stage", output)  # dvc repro: nothing changed
    assert (len(_runs(ws)), [p.count for p in mov_progress(workspace=ws)]) == before
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
