"""Registry runs mirrored into a real MLflow SQLite store, read back with MLflow's own client."""

from __future__ import annotations

import json
import math
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import registry
from registry.cli.mlflow import mlflow as mlflow_cli
from registry.errors import CairnError
from registry.store import open_store
from registry.transfer.backup import FORMAT, import_runs
from registry.transfer.mlflow import export_runs
from registry.transfer.mlflow.errors import MlflowUnavailableError
from registry.transfer.mlflow.export import parse_since
from tests.conftest import git

DVC_HASH = "61c531c3b0e5b5ba7e1e2a35e5ae2b9d.dir"
MOV = {"defects": {"mov": {"escape_rate": {"unit": "ppm", "direction": "lower",
                                           "baseline": 420, "target": 100}}}}


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once: MLflow's migrations take seconds each time."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client_for(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(mlflow_template, tmp_path) -> str:
    """A fresh MLflow SQLite store of this test's own."""
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copyfile(mlflow_template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def fill(workspace, tmp_path) -> dict[str, str]:
    """Runs of every kind, by role: two recorded by start_run, three imported as records
    (failed, killed, crashed) with a DVC data version."""
    ws = replace(workspace, projects=MOV)
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text("*\n")
    git(tmp_path, "add", "-f", ".gitignore")
    git(tmp_path, "commit", "-q", "-m", "start")
    plot = tmp_path / "confusion.txt"
    plot.write_text("tp fp\nfn tn\n")
    ids = {}
    for i, name in enumerate(["base", "mixup"]):
        with registry.start_run(
                project="defects", name=name, workspace=ws, question="does mixup help?",
                params={"lr": 10.0 ** -(i + 2), "arch": {"depth": 18}, "batch": 32,
                        "code": "007", "text32": "32", "none": None, "flag": True,
                        "betas": [0.9, 0.99], "w[0]": 0.5, "opt": "adam"},
                tags={"team": "vision", "cairn.kind": "finetune", "odd key!": "x"}) as run:
            for step in range(100):
                run.log_metrics({"train/loss": 1.0 / (step + 1), "val/acc": step / 100},
                                step=step)
            run.log_metric("train/loss", math.nan, step=100)
            run.log_metric("grad<norm>", math.inf)
            run.note(f"notes of {name}")
            run.set_conclusion("it helps a little")
            run.log_mov("escape_rate", 266 - i, evidence="line 3 audit")
            run.log_artifact(plot, "eval/confusion.txt")
        ids[name] = run.id
    now = time.time()
    records = []
    for status, heartbeat in (("FAILED", now), ("KILLED", now), ("RUNNING", now - 3600)):
        rid = uuid.uuid4().hex
        records.append({
            "format": FORMAT, "id": rid, "project": "defects", "name": f"old-{status.lower()}",
            "owner": "ben", "status": status, "start_time": now - 7200.123,
            "end_time": None if status == "RUNNING" else now - 60.5, "heartbeat_time": heartbeat,
            "heartbeat_interval": 30.0, "code": {"state": "git", "commit": "ab" * 20,
                                                 "branch": "main", "dirty": False},
            "params": {"lr": {"type": "float", "text": "0.1"}},
            "tags": {"team": "vision"}, "hardware": {"cpu": {"model": "EPYC", "cores": 2}},
            "metrics": {"loss": {"step": [0, 1, 2], "value": [1.0, "NaN", "-Infinity"],
                                 "time": [now - 100, now - 99, now - 98]}},
            "datasets": [{"path": "data/train", "role": "train", "tracked": True,
                          "hash": DVC_HASH, "hash_kind": "md5", "size": 1234, "nfiles": 10,
                          "remote": "s3://bucket/dvc", "source": "data/train.dvc",
                          "dirty": False, "dirty_check": "stat"}],
        })
        ids[status.lower()] = rid
    result = import_runs(open_store(workspace.store_url), [json.dumps(r) for r in records])
    assert not result.errors
    return ids


def test_export_mirrors_runs_into_mlflow(workspace, tmp_path, mlflow_uri):
    ids = fill(workspace, tmp_path)
    uri = mlflow_uri
    result = export_runs(uri, workspace=workspace)
    assert sorted(result.created) == sorted(ids.values()) and not result.failed
    client = client_for(uri)
    experiment = client.get_experiment_by_name("defects")
    runs = {r.data.tags["cairn.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(ids.values())

    base, record = runs[ids["base"]], registry.get_run(ids["base"], workspace=workspace)
    assert base.info.run_name == "base" and base.info.status == "FINISHED"
    assert base.data.params["lr"] == "0.01" and base.data.params["arch.depth"] == "18"
    assert base.data.params["w_0_"] == "0.5" and base.data.params["none"] == "None"
    tags = base.data.tags
    assert tags["mlflow.user"] == "tester" and tags["mlflow.note.content"] == "notes of base"
    assert tags["mlflow.source.git.commit"] == record.code["commit"]
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["team"] == "vision" and tags["cairn.kind"] == "finetune"
    assert tags["cairn.mov.escape_rate"] == "266 ppm"
    assert tags["cairn.conclusion"] == "it helps a little"
    assert json.loads(tags["cairn.renamed"])["params"] == {"w_0_": "w[0]"}
    assert json.loads(tags["cairn.param_types"]) == {"text32": "str"}  # "007" reads as text
    assert any(k.startswith("cairn.hardware.") for k in tags)
    history = client.get_metric_history(base.info.run_id, "train/loss")
    assert len(history) == 101 and math.isnan(history[-1].value)
    assert [m.step for m in history] == list(range(101))
    assert client.get_metric_history(base.info.run_id, "grad_norm_")[0].value > 1e308
    files = [f.path for f in client.list_artifacts(base.info.run_id, "eval")]
    assert files == ["eval/confusion.txt"]

    assert runs[ids["failed"]].info.status == "FAILED"
    assert runs[ids["killed"]].info.status == "KILLED"
    crashed = runs[ids["running"]]
    assert crashed.info.status == "FAILED" and crashed.data.tags["cairn.status"] == "CRASHED"
    inputs = runs[ids["failed"]].inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("data/train", DVC_HASH)]
    assert [t.value for t in inputs[0].tags] == ["train"]
    assert json.loads(inputs[0].dataset.profile)["nfiles"] == 10


def test_export_is_incremental_and_idempotent(workspace, tmp_path, mlflow_uri):
    uri = mlflow_uri
    with registry.start_run(project="p", name="live", workspace=workspace,
                            params={"lr": 0.1}) as run:
        for step in range(10):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        first = export_runs(uri, workspace=workspace)
        assert first.created == [run.id]
        again = export_runs(uri, workspace=workspace)
        assert again.unchanged == [run.id] and not again.created and not again.updated
        for step in range(10, 25):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_params({"epochs": 3})
        run.set_tag("stage", "done")
    changed = export_runs(uri, workspace=workspace)
    assert changed.updated == [run.id] and not changed.created
    client = client_for(uri)
    (mirror,) = client.search_runs([client.get_experiment_by_name("p").experiment_id])
    assert mirror.info.run_id == first.mlflow_ids[run.id]
    assert mirror.info.status == "FINISHED" and mirror.data.params["epochs"] == "3"
    assert mirror.data.tags["stage"] == "done"
    steps = [m.step for m in client.get_metric_history(mirror.info.run_id, "loss")]
    assert sorted(steps) == list(range(25))  # appended once, nothing twice
    assert export_runs(uri, workspace=workspace).unchanged == [run.id]
    record = registry.get_run(run.id, workspace=workspace)
    assert record.mlflow_run_id == mirror.info.run_id


def test_export_selects_by_project_run_and_since(workspace, tmp_path, mlflow_uri):
    ids = fill(workspace, tmp_path)
    uri = mlflow_uri
    assert export_runs(uri, project="nothing-here", workspace=workspace).created == []
    assert export_runs(uri, runs=["base"], workspace=workspace).created == [ids["base"]]
    later = export_runs(uri, since="1h", workspace=workspace, models=False)
    assert ids["failed"] not in later.created + later.unchanged  # started two hours ago
    assert ids["mixup"] in later.created


def test_since_parsing():
    assert abs(parse_since("2d") - (time.time() - 2 * 86400)) < 5
    assert parse_since("2026-11-01") == pytest.approx(
        __import__("datetime").datetime(2026, 11, 1).timestamp())
    assert parse_since(12.5) == 12.5
    with pytest.raises(CairnError, match="an age"):
        parse_since("last tuesday")


def test_unreachable_mlflow_is_a_typed_error(workspace, tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with registry.start_run(project="p", workspace=workspace):
        pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(MlflowUnavailableError) as info:
        export_runs(f"http://127.0.0.1:{port}", workspace=workspace)
    assert info.value.uri == f"http://127.0.0.1:{port}"


def test_cli_export_and_status(workspace, tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    with registry.start_run(project="p", name="cli-run", workspace=workspace) as run:
        run.log_metric("loss", 0.5)
    uri = mlflow_uri
    runner = CliRunner()
    out = runner.invoke(mlflow_cli, ["export", "--tracking-uri", uri])
    assert out.exit_code == 0, out.output
    assert "1 created" in out.output
    out = runner.invoke(mlflow_cli, ["export", "--tracking-uri", uri])
    assert "1 unchanged" in out.output
    out = runner.invoke(mlflow_cli, ["status", "cli-run"])
    assert out.exit_code == 0 and "export" in out.output and "in sync" in out.output
    out = runner.invoke(mlflow_cli, ["export"])
    assert out.exit_code == 1 and "--tracking-uri" in out.output
