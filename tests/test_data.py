"""Runs record the DVC versions of their data: declared with use_data, or a stage's deps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import registry
from registry.errors import DataNotTrackedError
from registry.store import SqlStore
from tests.conftest import git


def dvc(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True,
                   capture_output=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})


@pytest.fixture
def dvc_repo(tmp_dir: Path) -> Path:
    git(tmp_dir, "init", "-q", "-b", "main")
    dvc(tmp_dir, "init", "-q")
    dvc(tmp_dir, "remote", "add", "-d", "store", str(tmp_dir.parent / "dvc-remote"))
    for cls in ("scratch", "dent"):
        (tmp_dir / "data" / "train" / cls).mkdir(parents=True)
        for i in range(5):
            (tmp_dir / "data" / "train" / cls / f"{i}.txt").write_text(f"{cls} {i}\n")
    dvc(tmp_dir, "add", "-q", "data/train")
    git(tmp_dir, "add", "-A")
    git(tmp_dir, "commit", "-q", "-m", "data")
    return tmp_dir


def _recorded_md5(repo: Path) -> str:
    return yaml.safe_load((repo / "data" / "train.dvc").read_text())["outs"][0]["md5"]


def test_use_data_records_the_dvc_version(workspace, dvc_repo):
    with registry.start_run(workspace=workspace) as run:
        use = run.use_data("data/train", role="train")
    d = registry.get_run(run.id, workspace=workspace).datasets[0]
    assert d == use
    assert (d.path, d.role, d.tracked, d.hash) == ("data/train", "train", True,
                                                   _recorded_md5(dvc_repo))
    assert d.nfiles == 10 and d.size > 0 and d.dirty is False
    assert d.remote == str(dvc_repo.parent / "dvc-remote") and d.source == "data/train.dvc"


def test_changed_data_is_flagged_dirty_with_a_warning(workspace, dvc_repo):
    (dvc_repo / "data" / "train" / "dent" / "0.txt").write_text("relabelled\n")
    with registry.start_run(workspace=workspace) as run:
        run.use_data("data/train")
    r = registry.get_run(run.id, workspace=workspace)
    assert r.datasets[0].dirty is True
    assert any("differs from the version DVC recorded" in w for w in r.warnings)


def test_untracked_data_is_a_warning_or_strict_error(workspace, dvc_repo):
    (dvc_repo / "loose").mkdir()
    (dvc_repo / "loose" / "x.txt").write_text("x")
    with registry.start_run(workspace=workspace) as run:
        use = run.use_data("loose", role="val")
        with pytest.raises(DataNotTrackedError):
            run.use_data("loose", strict=True)
    r = registry.get_run(run.id, workspace=workspace)
    assert use.tracked is False and r.datasets[0].hash is None
    assert any("not tracked by DVC" in w for w in r.warnings) and r.status == "FINISHED"


def test_runs_on_the_same_data_share_one_dataset_version(workspace, dvc_repo):
    ids = []
    for _ in range(2):
        with registry.start_run(workspace=workspace) as run:
            run.use_data("data/train")
        ids.append(run.id)
    store = SqlStore(workspace.store_url)
    from registry.store.schema import dataset

    with store.reading() as conn:
        assert len(conn.execute(dataset.select()).all()) == 1


STAGE_SCRIPT = textwrap.dedent("""
    import registry
    with registry.start_run(project="pipeline", name="train-stage") as run:
        run.log_metric("acc", 0.9)
    open("run_id.txt", "w").write(run.id)
""")


@pytest.mark.slow
def test_inside_dvc_repro_the_stage_deps_are_recorded(tmp_path, dvc_repo, store_url):
    (dvc_repo / "train.py").write_text(STAGE_SCRIPT)
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": f"{sys.executable} train.py", "deps": ["data/train", "train.py"],
        "outs": [{"run_id.txt": {"cache": False}}]}}}))
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_ARTIFACTS": str(tmp_path / "art"),
           "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=dvc_repo, env=env,
                   check=True, capture_output=True)
    r = SqlStore(store_url).get_run((dvc_repo / "run_id.txt").read_text())
    deps = {d.path: d for d in r.datasets}
    assert deps["data/train"].role == "dep" and deps["data/train"].hash == _recorded_md5(dvc_repo)
    assert deps["data/train"].tracked and deps["train.py"].tracked is False
