"""A run records code, params, metrics, artifacts and its outcome, on every dialect."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import registry
from registry.artifacts import ArtifactStore
from registry.errors import MetricError, ParamError, RunStateError
from registry.store import open_store
from tests.conftest import git


def _repo(path):
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", "https://user:secret@example.com/team/vision.git")
    return git(path, "rev-parse", "HEAD").strip()


def test_a_run_records_its_whole_context(workspace, tmp_dir):
    commit = _repo(tmp_dir)
    (tmp_dir / "train.py").write_text("print('train, changed')\n")
    (tmp_dir / "confusion.png").write_bytes(b"\x89PNG fake image bytes")
    cfg = {"model": {"backbone": "resnet18", "dropout": 0.1}, "lr": 3e-4, "epochs": 5,
           "amp": True, "betas": (0.9, 0.999), "note": None}

    with registry.start_run(project="defects", name="r18-baseline", params=cfg,
                            tags={"task": "cls"}, question="Does mixup help?",
                            workspace=workspace) as run:
        for step in range(100):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"val_acc": 0.91, "val_loss": 0.3}, step=99)
        run.log_artifact(tmp_dir / "confusion.png", name="plots/confusion.png")
        run.set_conclusion("baseline works")

    r = registry.get_run(run.id, workspace=workspace)
    assert r.status == "FINISHED" and r.owner == "tester" and r.project == "defects"
    assert r.code["commit"] == commit and r.code["branch"] == "main"
    assert r.code["dirty"] is True and r.code["remote"] == "https://example.com/team/vision.git"
    diff = ArtifactStore(workspace.artifact_root).open(r.code["diff_sha256"]).read()
    assert b"train, changed" in diff
    assert r.params == {"model.backbone": "resnet18", "model.dropout": 0.1, "lr": 3e-4,
                        "epochs": 5, "amp": True, "betas": [0.9, 0.999], "note": None}
    assert r.tags == {"task": "cls"} and r.question == "Does mixup help?"
    assert r.conclusion == "baseline works"
    loss = r.metrics["loss"]
    assert (loss.count, loss.last, loss.min, loss.max, loss.last_step) == (100, 0.01, 0.01, 1.0, 99)
    assert r.metrics["val_acc"].last == 0.91
    history = registry.metric_history(run.id, workspace=workspace)
    assert [p.step for p in history["loss"]] == list(range(100))
    assert [a.name for a in r.artifacts] == ["plots/confusion.png"]
    assert r.hardware["cpu"]["logical_cores"] >= 1 and r.hardware["ram_bytes"] > 0
    assert r.environment["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert r.command and r.hostname and r.end_time >= r.start_time


def test_outside_git_is_recorded_as_such(workspace):
    with registry.start_run(project="p", workspace=workspace) as run:
        run.log_metric("x", 1.0)
    assert registry.get_run(run.id, workspace=workspace).code["state"] == "no-git"


def test_exception_marks_failed_with_traceback(workspace):
    with pytest.raises(ZeroDivisionError), registry.start_run(workspace=workspace) as run:
        run.log_metric("loss", 0.5)
        1 / 0  # noqa: B018
    r = registry.get_run(run.id, workspace=workspace)
    assert r.status == "FAILED" and "ZeroDivisionError" in r.failure
    assert r.metrics["loss"].last == 0.5


def test_ctrl_c_marks_killed_after_flush(workspace):
    with pytest.raises(KeyboardInterrupt), registry.start_run(workspace=workspace) as run:
        for i in range(1000):
            run.log_metric("loss", float(i))
        raise KeyboardInterrupt
    r = registry.get_run(run.id, workspace=workspace)
    assert r.status == "KILLED" and r.metrics["loss"].count == 1000


def test_non_finite_metrics_are_recorded_and_flagged(workspace):
    with registry.start_run(workspace=workspace) as run:
        for v in (1.0, math.nan, math.inf, -math.inf, 0.5):
            run.log_metric("loss", v)
    r = registry.get_run(run.id, workspace=workspace)
    values = [p.value for p in registry.metric_history(run.id, workspace=workspace)["loss"]]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf, 0.5]
    s = r.metrics["loss"]
    assert (s.count, s.nonfinite_count, s.min, s.max, s.last) == (5, 3, 0.5, 1.0, 0.5)
    assert any("non-finite" in w for w in r.warnings)


@pytest.mark.parametrize("key, value", [
    ("", 1.0), (None, 1.0), ("x" * 300, 1.0), ("bad\nname", 1.0), ("ok", "0.5"),
    ("ok", object()), ("ok", [1, 2]), ("bad\udcff", 1.0),
])
def test_bad_metrics_raise_and_lose_nothing(workspace, key, value):
    with registry.start_run(workspace=workspace) as run:
        run.log_metric("good", 1.0)
        with pytest.raises(MetricError):
            run.log_metric(key, value)
        run.log_metric("good", 2.0)
    assert registry.get_run(run.id, workspace=workspace).metrics["good"].count == 2


def test_bad_steps_raise(workspace):
    with registry.start_run(workspace=workspace) as run:
        for step in (1.5, "3", True, 2**70):
            with pytest.raises(MetricError):
                run.log_metric("x", 1.0, step=step)


def test_params_that_cannot_be_recorded_get_clear_errors(workspace):
    with pytest.raises(ParamError, match="model"):
        registry.start_run(params={"model": object()}, workspace=workspace)
    with pytest.raises(ParamError, match="artifact"):
        registry.start_run(params={"blob": "x" * 100_000}, workspace=workspace)
    with registry.start_run(params={"lr": 0.1}, workspace=workspace) as run:
        run.log_params({"lr": 0.1, "wd": 0.05})
        with pytest.raises(ParamError, match="already recorded"):
            run.log_param("lr", 0.2)
    assert registry.get_run(run.id, workspace=workspace).params == {"lr": 0.1, "wd": 0.05}


def test_text_that_is_not_utf8_is_coerced_with_a_warning(workspace):
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    with registry.start_run(name=bad, params={"note": bad}, workspace=workspace) as run:
        run.note(bad)
    r = registry.get_run(run.id, workspace=workspace)
    assert r.params["note"] == "caf\ufffd" and r.name == "caf\ufffd" and r.notes == "caf\ufffd"
    assert any("UTF-8" in w for w in r.warnings)


def test_logging_after_end_is_an_error(workspace):
    run = registry.start_run(workspace=workspace)
    run.end()
    run.end()  # idempotent
    with pytest.raises(RunStateError):
        run.log_metric("x", 1.0)


def test_flush_makes_points_durable_while_running(workspace):
    with registry.start_run(workspace=workspace) as run:
        for i in range(10):
            run.log_metric("x", float(i))
        assert run.flush(timeout=10)
        assert run.record().metrics["x"].count == 10
        assert run.record().status == "RUNNING"


def test_run_refs_resolve_by_prefix_and_name(workspace):
    runs = [registry.start_run(name=f"n{i}", workspace=workspace) for i in range(3)]
    for r in runs:
        r.end()
    store = open_store(workspace.store_url)
    assert store.get_run(runs[0].id[:8]).id == runs[0].id
    assert store.get_run("n2").id == runs[2].id
    with pytest.raises(registry.errors.RunNotFoundError):
        store.get_run("nope")


def test_import_registry_stays_light():
    code = ("import sys, registry; heavy = {'sqlalchemy', 'torch', 'mlflow', 'dvc', 'yaml'}"
            " & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_notes_accumulate(workspace):
    with registry.start_run(notes="first", workspace=workspace) as run:
        run.note("second")
        run.note("third")
    assert registry.get_run(run.id, workspace=workspace).notes == "first\n\nsecond\n\nthird"


def test_artifacts_go_to_any_fsspec_root(workspace, tmp_dir):
    from dataclasses import replace

    ws = replace(workspace, artifact_root="memory://cairn-test/artifacts")
    (tmp_dir / "model.bin").write_bytes(b"weights" * 1000)
    (tmp_dir / "plots").mkdir()
    (tmp_dir / "plots" / "a.txt").write_text("a")
    (tmp_dir / "plots" / "b.txt").write_text("b")
    with registry.start_run(workspace=ws) as run:
        first = run.log_artifact(tmp_dir / "model.bin")
        again = run.log_artifact(tmp_dir / "model.bin", name="copy/model.bin")
        run.log_artifact(tmp_dir / "plots")
    assert first.sha256 == again.sha256 and first.uri.startswith("memory://")
    store = ArtifactStore(ws.artifact_root)
    assert store.open(first.sha256).read() == b"weights" * 1000
    names = [a.name for a in registry.get_run(run.id, workspace=ws).artifacts]
    assert names == ["copy/model.bin", "model.bin", "plots/a.txt", "plots/b.txt"]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "nul\x00"])
def test_artifact_names_cannot_escape(workspace, tmp_dir, name):
    (tmp_dir / "f.txt").write_text("x")
    with registry.start_run(workspace=workspace) as run:
        if name in ("/etc/passwd",):
            assert run.log_artifact(tmp_dir / "f.txt", name=name).name == "etc/passwd"
        else:
            with pytest.raises(registry.errors.ArtifactError):
                run.log_artifact(tmp_dir / "f.txt", name=name)


def test_local_state_never_shows_as_untracked_code(slow_workspace, tmp_dir, monkeypatch):
    from dataclasses import replace

    repo = tmp_dir / "repo"
    repo.mkdir()
    _repo(repo)
    monkeypatch.chdir(repo)
    ws = replace(slow_workspace, root=repo)
    for _ in range(2):
        with registry.start_run(workspace=ws) as run:
            run.log_metric("x", 1.0)
    r = registry.get_run(run.id, workspace=ws)
    assert (repo / ".cairn").is_dir()
    assert r.code["dirty"] is False and r.code["untracked"] == []
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("name", sorted(registry._LAZY))
def test_the_knowledge_layer_is_reachable_from_the_package(name):
    assert callable(getattr(registry, name)) and name in registry.__all__
