"""Against a real ``mlflow server`` on 127.0.0.1, started and stopped (by its pid) here:
export with a fine-tuned model, MLflow's own client reading it back, and the import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from registry.store import open_store
from registry.transfer.mlflow import export_runs, import_runs
from tests._procs import free_port
from tests.test_mlflow_export import client_for, fill
from tests.test_mlflow_models import CLASSES, finetune_run

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path):
    """The URL of an ``mlflow server`` with a SQLite backend in tmp_path."""
    port = free_port()
    folder = tmp_path / "server"
    folder.mkdir()
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("mlflow server did not start:\n" +
                            (folder / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_export_and_import_through_a_server(workspace, tmp_path, mlflow_server, monkeypatch):
    import mlflow.pyfunc
    import numpy as np
    import torch

    pytest.importorskip("zoo._compat").import_timm()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    ids = fill(workspace, tmp_path)
    model_run, model = finetune_run(workspace, tmp_path)
    result = export_runs(mlflow_server, workspace=workspace)
    assert len(result.created) == len(ids) + 1 and not result.failed and not result.warnings
    assert result.models == ["defects-r10t/1"]
    assert export_runs(mlflow_server, workspace=workspace).unchanged == result.created

    client = client_for(mlflow_server)
    experiment = client.get_experiment_by_name("defects")
    found = client.search_runs([experiment.experiment_id], "params.lr = '0.01'")
    assert [r.data.tags["cairn.run_id"] for r in found] == [ids["base"]]
    assert len(client.get_metric_history(found[0].info.run_id, "train/loss")) == 101
    (version,) = client.search_model_versions("name = 'defects-r10t'")
    assert version.run_id == result.mlflow_ids[model_run]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # models:/ resolves through it
    loaded = mlflow.pyfunc.load_model("models:/defects-r10t/1")
    sample = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(sample)).numpy()
    np.testing.assert_allclose(loaded.predict(sample), expected, atol=1e-5)
    assert loaded.metadata.metadata["class_names"] == CLASSES

    store = open_store(workspace.store_url)
    before = {i: (store.get_run(i), store.metric_history(i)) for i in ids.values()}
    for run_id in ids.values():
        store.delete_run(store.resolve(run_id))
    imported = import_runs(mlflow_server, workspace=workspace)
    assert len(imported.created) == len(ids) and len(imported.mapped_back) == 1
    for run_id, (old, history) in before.items():
        new = store.get_run(run_id)
        assert (new.params, new.tags, new.stored_status) == (old.params, old.tags,
                                                             old.stored_status)
        assert {k: [(p.step, repr(p.value)) for p in v]
                for k, v in store.metric_history(run_id).items()} == {
            k: [(p.step, repr(p.value)) for p in v] for k, v in history.items()}
    assert import_runs(mlflow_server, workspace=workspace).created == []


def test_runs_made_with_mlflow_through_a_server_import_whole(workspace, tmp_path, mlflow_server,
                                                             monkeypatch):
    """Nesting, artifacts (through the server's artifact proxy) and a logged model."""
    import hashlib
    import json

    import mlflow
    import mlflow.pytorch
    import torch

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    mlflow.set_experiment("served")
    plot = tmp_path / "curve.png"
    plot.write_bytes(b"\x89PNG" + bytes(range(256)))
    with mlflow.start_run(run_name="search") as parent, \
            mlflow.start_run(run_name="trial", nested=True) as child:
        mlflow.log_param("flag", True)
        mlflow.log_artifact(str(plot), "plots")
        mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="net",
                                 pip_requirements=["torch"], serialization_format="pickle")

    result = import_runs(mlflow_server, workspace=workspace)
    assert sorted(result.created) == sorted([parent.info.run_id, child.info.run_id])
    assert not result.failed and not result.skipped_artifacts
    record = open_store(workspace.store_url).get_run(child.info.run_id)
    assert record.parent_id == parent.info.run_id and record.params["flag"] is True
    files = {a.name: a for a in record.artifacts}
    assert files["plots/curve.png"].sha256 == hashlib.sha256(plot.read_bytes()).hexdigest()
    assert Path(files["plots/curve.png"].uri).read_bytes() == plot.read_bytes()
    assert files["mlflow-models/net/MLmodel"].sha256
    assert "pytorch" in json.loads(record.tags["cairn.mlflow.model.net"])["flavors"]
