"""MLflow runs into the registry, and the round trip registry -> MLflow -> registry."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from registry.cli.mlflow import mlflow as mlflow_cli
from registry.store import open_store
from registry.transfer.mlflow import export_runs, import_runs
from registry.transfer.mlflow._convert import to_ms
from registry.transfer.mlflow.errors import MlflowBridgeError
from tests.test_mlflow_export import client_for, fill, mlflow_template, mlflow_uri

__all__ = ["mlflow_template", "mlflow_uri"]  # fixtures shared with the export tests


def _history(store, run_id):
    """Each point's step, value and time in milliseconds, MLflow's resolution, rounded as the
    bridge rounds them (``round(t, 3)`` disagrees with it for about 1 time in 8,000)."""
    return {k: [(p.step, repr(p.value), to_ms(p.time)) for p in points]
            for k, points in store.metric_history(run_id).items()}


def _fields(record):
    code = {k: record.code.get(k) for k in ("state", "commit", "branch", "remote", "dirty",
                                             "diff_sha256")}
    return {"project": record.project, "name": record.name, "owner": record.owner,
            "stored_status": record.stored_status, "status": record.status,
            "start_time": round(record.start_time, 3),
            "end_time": None if record.end_time is None else round(record.end_time, 3),
            "notes": record.notes, "question": record.question,
            "conclusion": record.conclusion, "command": record.command,
            "entry_point": record.entry_point, "hostname": record.hostname, "code": code,
            "datasets": record.datasets, "artifacts": [a.name for a in record.artifacts]}


def test_round_trip_gives_back_the_same_runs(workspace, tmp_path, mlflow_uri):
    """Export, forget the runs, import: params, histories, tags, statuses, field by field."""
    ids = fill(workspace, tmp_path)
    store = open_store(workspace.store_url)
    before = {i: (store.get_run(i), _history(store, i)) for i in ids.values()}
    assert not export_runs(mlflow_uri, workspace=workspace).failed
    for run_id in ids.values():
        store.delete_run(store.resolve(run_id))

    result = import_runs(mlflow_uri, workspace=workspace)
    assert sorted(result.run_ids.values()) == sorted(ids.values()) and not result.failed
    assert len(result.created) == len(ids)
    mlflow_of = {v: k for k, v in result.run_ids.items()}
    for run_id, (old, old_history) in before.items():
        new = store.get_run(run_id)
        assert new.params == old.params and {k: type(v) for k, v in new.params.items()} == {
            k: type(v) for k, v in old.params.items()}
        assert new.tags == old.tags
        assert _history(store, run_id) == old_history
        assert _fields(new) == _fields(old)
        assert new.mlflow_run_id == mlflow_of[run_id]
    assert before[ids["running"]][0].status == "CRASHED"


def test_import_brings_in_mlflow_runs_once(workspace, mlflow_uri):
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    client = client_for(mlflow_uri)
    experiment = client.create_experiment("baseline")
    created = client.create_run(experiment, start_time=1_700_000_000_000, run_name="r1", tags={
        "mlflow.user": "carla", "mlflow.source.git.commit": "c0ffee" * 6 + "abcd",
        "mlflow.note.content": "first try", "team": "vision"})
    run_id = created.info.run_id
    client.log_batch(run_id, params=[Param("lr", "0.001"), Param("epochs", "10"),
                                     Param("opt", "sgd"), Param("nesterov", "True")],
                     metrics=[Metric("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s)
                              for s in range(50)])
    client.log_inputs(run_id, [DatasetInput(Dataset("train.csv", "abc123", "local",
                                                    '{"uri": "/data/train.csv"}'),
                                            [InputTag("mlflow.data.context", "training")])])
    client.log_text(run_id, "hello", "notes/readme.txt")
    client.set_terminated(run_id, "FAILED", end_time=1_700_000_100_000)

    result = import_runs(mlflow_uri, workspace=workspace)
    assert result.created == [run_id] and not result.failed
    store = open_store(workspace.store_url)
    record = store.get_run(run_id)
    assert (record.project, record.name, record.owner) == ("baseline", "r1", "carla")
    assert record.status == "FAILED" and record.end_time == 1_700_000_100.0
    assert record.code["commit"] == "c0ffee" * 6 + "abcd" and record.notes == "first try"
    assert record.params == {"lr": 0.001, "epochs": 10, "opt": "sgd", "nesterov": True}
    assert record.tags == {"team": "vision", "cairn.mlflow.param_text": '{"nesterov": "True"}'}
    history = store.metric_history(run_id)["loss"]
    assert [p.step for p in history] == list(range(50)) and history[3].value == 0.25
    (data,) = record.datasets
    assert (data.path, data.role, data.hash, data.tracked) == ("train.csv", "training",
                                                               "abc123", False)
    (artifact,) = record.artifacts
    assert artifact.name == "notes/readme.txt" and artifact.size == 5
    assert artifact.sha256 == hashlib.sha256(b"hello").hexdigest()  # copied into Cairn's store
    assert Path(artifact.uri).read_bytes() == b"hello"

    again = import_runs(mlflow_uri, workspace=workspace)
    assert again.unchanged == [run_id] and not again.created and not again.updated
    client.log_batch(run_id, metrics=[Metric("loss", 0.01, 1_700_000_050_000, 50)])
    changed = import_runs(mlflow_uri, workspace=workspace)
    assert changed.updated == [run_id]
    assert len(store.metric_history(run_id)["loss"]) == 51
    assert len(store.list_runs(limit=100)) == 1


def test_exported_runs_map_back_to_the_original(workspace, tmp_path, mlflow_uri):
    ids = fill(workspace, tmp_path)
    export_runs(mlflow_uri, workspace=workspace)
    store = open_store(workspace.store_url)
    count = len(store.list_runs(limit=100))
    result = import_runs(mlflow_uri, workspace=workspace)
    assert not result.created and sorted(result.run_ids.values()) == sorted(ids.values())
    assert len(result.mapped_back) == len(ids) and len(store.list_runs(limit=100)) == count
    export_again = export_runs(mlflow_uri, workspace=workspace)
    assert not export_again.created  # nothing mirrored twice either


def test_experiment_filter_project_and_cli(workspace, mlflow_uri, monkeypatch):
    client = client_for(mlflow_uri)
    for name in ("keep", "other"):
        run = client.create_run(client.create_experiment(name), run_name=name)
        client.log_metric(run.info.run_id, "acc", math.pi, step=1)
    result = import_runs(mlflow_uri, experiments=["keep"], project="imported",
                         workspace=workspace)
    (record,) = open_store(workspace.store_url).list_runs(limit=10)
    assert result.created == [record.id] and record.project == "imported"
    assert record.status == "RUNNING" and record.metrics["acc"].last == math.pi
    with pytest.raises(MlflowBridgeError, match="no MLflow experiment named nope"):
        import_runs(mlflow_uri, experiments=["nope"], workspace=workspace)

    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    out = CliRunner().invoke(mlflow_cli, ["import", "--tracking-uri", mlflow_uri,
                                          "--experiment", "other"])
    assert out.exit_code == 0 and "1 created" in out.output, out.output
    out = CliRunner().invoke(mlflow_cli, ["import", "--tracking-uri", mlflow_uri,
                                          "--experiment", "nope"])
    assert out.exit_code == 1 and "no MLflow experiment named nope" in out.output


def test_nested_runs_and_param_text_survive_import_and_export_back(
        workspace, mlflow_uri, mlflow_template, tmp_path, monkeypatch):
    """Runs made with MLflow's own fluent API (nested=True), imported, exported to another
    MLflow store: the same tree, the same param text, field by field."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    mlflow.set_experiment("sweep")
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_params({"search": "grid", "flag": True})
        for lr in (0.1, 0.01):
            with mlflow.start_run(run_name=f"lr={lr}", nested=True):
                mlflow.log_params({"lr": lr, "amp": False, "note": "None"})
                mlflow.log_metric("val_acc", 0.9 - lr)
    source = client_for(mlflow_uri)
    runs = {r.info.run_name: r for r in source.search_runs(
        [source.get_experiment_by_name("sweep").experiment_id])}

    result = import_runs(mlflow_uri, workspace=workspace)
    assert not result.failed and len(result.created) == 3
    store = open_store(workspace.store_url)
    for name in ("lr=0.1", "lr=0.01"):
        child = store.get_run(runs[name].info.run_id)
        assert child.parent_id == parent.info.run_id
        assert child.params["amp"] is False
    assert store.get_run(parent.info.run_id).parent_id is None
    children = store.list_runs(parent_id=parent.info.run_id)
    assert sorted(c.name for c in children) == ["lr=0.01", "lr=0.1"]

    other_uri = f"sqlite:///{tmp_path / 'other.db'}"  # another, empty MLflow store
    shutil.copyfile(mlflow_template, tmp_path / "other.db")
    other = client_for(other_uri)
    exported = export_runs(other_uri, workspace=workspace)
    assert not exported.failed and len(exported.created) == 3
    mirror = {store.get_run(rid).name: other.get_run(mid)
              for rid, mid in exported.mlflow_ids.items()}
    assert "mlflow.parentRunId" not in mirror["sweep"].data.tags
    for name in ("lr=0.1", "lr=0.01"):
        assert mirror[name].data.tags["mlflow.parentRunId"] == mirror["sweep"].info.run_id
        assert mirror[name].data.params == runs[name].data.params  # "False", "None": as made
        assert "cairn.mlflow.param_text" not in mirror[name].data.tags
    assert mirror["sweep"].data.params == runs["sweep"].data.params  # "True", not "true"


def test_artifacts_and_logged_models_are_copied_and_go_back_as_they_came(
        workspace, mlflow_uri, mlflow_template, tmp_path, monkeypatch):
    import mlflow
    import mlflow.pytorch
    import torch

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    mlflow.set_experiment("models")
    small, large = tmp_path / "confusion.png", tmp_path / "big.bin"
    small.write_bytes(b"\x89PNG not really" * 10)
    large.write_bytes(b"x" * 5000)
    with mlflow.start_run(run_name="trained") as made:
        mlflow.log_artifact(str(small), "plots")
        mlflow.log_artifact(str(large))
        net = torch.nn.Linear(3, 2)
        mlflow.pytorch.log_model(net, name="classifier", pip_requirements=["torch"],
                                 serialization_format="pickle")
    mid = made.info.run_id

    result = import_runs(mlflow_uri, workspace=workspace, max_artifact_size=4096)
    assert result.created == [mid] and not result.failed
    assert result.skipped_artifacts[mid] == [
        f"big.bin (5,000 bytes, kept at {made.info.artifact_uri}/big.bin)"]
    record = open_store(workspace.store_url).get_run(mid)
    files = {a.name: a for a in record.artifacts}
    png = files["plots/confusion.png"]
    assert png.sha256 == hashlib.sha256(small.read_bytes()).hexdigest()
    assert Path(png.uri).read_bytes() == small.read_bytes()  # in Cairn's own store
    assert files["big.bin"].sha256 == "" and files["big.bin"].uri.endswith("/big.bin")
    model_files = {n for n in files if n.startswith("mlflow-models/classifier/")}
    assert "mlflow-models/classifier/MLmodel" in model_files
    assert all(files[n].sha256 for n in model_files)
    link = json.loads(record.tags["cairn.mlflow.model.classifier"])
    assert "pytorch" in link["flavors"] and link["model_id"].startswith("m-")

    other_uri = f"sqlite:///{tmp_path / 'other.db'}"
    shutil.copyfile(mlflow_template, tmp_path / "other.db")
    exported = export_runs(other_uri, workspace=workspace)
    assert not exported.failed
    assert exported.warnings == [f"run {mid[:8]}: artifact 'big.bin' is a reference to "
                                 f"{made.info.artifact_uri}/big.bin, not copied"]
    other = client_for(other_uri)
    mirror = other.get_run(exported.mlflow_ids[mid])
    assert {f.path for f in other.list_artifacts(mirror.info.run_id, "plots")} == {
        "plots/confusion.png"}
    (model,) = other.search_logged_models([mirror.info.experiment_id])
    assert (model.name, model.source_run_id) == ("classifier", mirror.info.run_id)
    folder = mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                                 tracking_uri=other_uri)
    loaded = mlflow.pytorch.load_model(folder)  # MLflow reads it back
    assert torch.equal(loaded.weight, net.weight)
    again = export_runs(other_uri, workspace=workspace)
    assert len(other.search_logged_models([mirror.info.experiment_id])) == 1
    assert again.unchanged == [mid] or again.updated == [mid]
