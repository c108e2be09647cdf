"""The MLflow anchor store: the generator's first runs logged with MLflow's own client.

Built once per MLflow version, size and seed under the benchmark cache (a ``.partial`` folder
renamed when complete, so a half-built store is never reused), because logging 10,000 runs
through ``MlflowClient`` takes minutes here.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from _common import progress
from _synthetic import GENERATOR_VERSION, PROJECTS, SyntheticRun, synthetic_runs

__all__ = ["mlflow_store"]


def mlflow_store(cache: Path, runs: int, *, seed: int,
                 history_points: int) -> tuple[str, bool, float]:
    """(tracking URI, reused?, seconds spent building) of an MLflow SQLite store holding the
    first ``runs`` generated runs: params, final metric values and tags."""
    from importlib import metadata

    name = (f"mlflow{metadata.version('mlflow')}-n{runs}-s{seed}"
            f"-h{history_points}-g{GENERATOR_VERSION}")
    folder = cache / name
    if (folder / "mlflow.db").exists():
        return f"sqlite:///{folder / 'mlflow.db'}", True, 0.0
    partial = cache / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    began = time.perf_counter()
    _log_into_mlflow(f"sqlite:///{partial / 'mlflow.db'}", partial, runs, seed, history_points)
    os.replace(partial, folder)
    return f"sqlite:///{folder / 'mlflow.db'}", False, time.perf_counter() - began


def _log_into_mlflow(uri: str, folder: Path, runs: int, seed: int,
                     history_points: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = {p: client.create_experiment(p, artifact_location=str(folder / "artifacts" / p))
                   for p in PROJECTS}
    began = time.perf_counter()
    for run in synthetic_runs(runs, seed=seed, history_points=history_points):
        _log_run(client, experiments[run.project], run)
        if (run.index + 1) % 1_000 == 0:
            rate = (run.index + 1) / (time.perf_counter() - began)
            progress(f"    {run.index + 1:,} / {runs:,} runs ({rate:.0f} runs/s)")


def _log_run(client, experiment_id: str, run: SyntheticRun) -> None:
    """One run as an MLflow user would log it: tags at creation, then one log_batch of the
    params (as text) and each metric's final value, then the end status."""
    from mlflow.entities import Metric, Param

    tags = {**run.tags, "mlflow.user": run.owner, "mlflow.source.git.commit": run.commit,
            **{f"data.{role}": md5 for role, _, md5 in run.data}}
    for key, text in (("mlflow.note.content", run.notes), ("question", run.question),
                      ("conclusion", run.conclusion)):
        if text:
            tags[key] = text
    created = client.create_run(experiment_id, start_time=int(run.start_time * 1000), tags=tags,
                                run_name=run.name)
    run_id = created.info.run_id
    metrics = []
    for key in run.history:
        step, value, at = run.last(key)
        metrics.append(Metric(key, value, int(at * 1000), step))
    params = [Param(k, str(v)) for k, v in run.params.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    if run.status != "RUNNING":
        client.set_terminated(run_id, run.status, end_time=int(run.end_time * 1000))
