"""Live mirroring from start_run: streamed while training, completed at the end, and never
in the way of the training loop, even when MLflow is slow or down."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import registry
from registry.transfer.mlflow.export import Exporter
from tests.test_mlflow_export import client_for, mlflow_template, mlflow_uri

__all__ = ["mlflow_template", "mlflow_uri"]  # fixtures shared with the export tests


def _live(workspace, uri, **extra):
    return replace(workspace, mlflow={"tracking_uri": uri, "live": True, **extra})


def _mirror_of(uri, project):
    client = client_for(uri)
    experiment = client.get_experiment_by_name(project)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_metrics_stream_while_the_run_trains(workspace, mlflow_uri):
    ws = _live(workspace, mlflow_uri)
    with registry.start_run(project="live", name="streamed", workspace=ws,
                            params={"lr": 0.1}) as run:
        for step in range(20):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        deadline, streamed = time.time() + 30, []
        while time.time() < deadline and len(streamed) < 20:
            mirrors = _mirror_of(mlflow_uri, "live")
            if mirrors:
                streamed = client_for(mlflow_uri).get_metric_history(mirrors[0].info.run_id,
                                                                     "loss")
            time.sleep(0.2)
        assert len(streamed) == 20 and mirrors[0].info.status == "RUNNING"
        for step in range(20, 30):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.set_tag("stage", "final")
    (mirror,) = _mirror_of(mlflow_uri, "live")
    assert mirror.info.status == "FINISHED" and mirror.data.tags["stage"] == "final"
    assert mirror.data.params == {"lr": "0.1"}
    history = client_for(mlflow_uri).get_metric_history(mirror.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(30))  # every point, once
    record = registry.get_run(run.id, workspace=workspace)
    assert record.mlflow_run_id == mirror.info.run_id
    assert not [w for w in record.warnings if "MLflow" in w]


def test_a_slow_mlflow_drops_batches_that_the_end_fills_in(workspace, mlflow_uri, monkeypatch):
    start = Exporter.start_live

    def slow_start(self, pk):
        time.sleep(1.5)  # MLflow answering slowly while the queue (one batch) fills
        return start(self, pk)

    monkeypatch.setattr(Exporter, "start_live", slow_start)
    ws = _live(workspace, mlflow_uri, queue=1)
    with registry.start_run(project="live", name="dropping", workspace=ws) as run:
        for batch in range(5):
            for step in range(batch * 10, batch * 10 + 10):
                run.log_metric("acc", step / 50, step=step)
            run.flush()
    record = registry.get_run(run.id, workspace=workspace)
    (warning,) = [w for w in record.warnings if "dropped" in w]
    assert "40 metric points" in warning
    (mirror,) = _mirror_of(mlflow_uri, "live")
    history = client_for(mlflow_uri).get_metric_history(mirror.info.run_id, "acc")
    assert sorted(m.step for m in history) == list(range(50))


def test_mlflow_down_never_fails_or_slows_training(workspace, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    ws = _live(workspace, f"http://127.0.0.1:{port}", timeout=5)
    began = time.perf_counter()
    with registry.start_run(project="live", name="offline", workspace=ws) as run:
        logged = time.perf_counter()
        for step in range(10_000):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        loop = time.perf_counter() - logged
    assert loop < 1.0  # about a microsecond a call, mirror or not
    assert time.perf_counter() - began < 30
    record = registry.get_run(run.id, workspace=workspace)
    assert record.status == "FINISHED" and record.metrics["loss"].count == 10_000
    assert any("live MLflow mirror" in w and "failed" in w for w in record.warnings)
