"""MLflow, imported only here and only when used: a client bound to one tracking URI.

The bridge never touches MLflow's global (fluent) state: every call goes through an
``MlflowClient`` made with an explicit tracking and registry URI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from registry.transfer.mlflow.errors import MlflowMissingError, MlflowUnavailableError

__all__ = ["Experiments", "artifact_location", "make_client", "normalise_uri", "unavailable"]


def normalise_uri(uri: str) -> str:
    """One spelling per store, so links recorded under it match: absolute SQLite and file
    paths, no trailing slash."""
    uri = str(uri).strip()
    for prefix in ("sqlite:///", "file://"):
        rest = uri[len(prefix):]
        if uri.startswith(prefix) and rest and not rest.startswith("/") and rest != ":memory:":
            return prefix + str(Path(rest).resolve())
    if "://" not in uri:
        return str(Path(uri).resolve())
    return uri.rstrip("/")


def make_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (tracking and model registry alike)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MlflowMissingError(str(exc)) from exc
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def unavailable(uri: str, exc: Exception) -> MlflowUnavailableError:
    """MLflow's own exceptions (and connection errors) as the bridge's typed error."""
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return MlflowUnavailableError(uri, detail.splitlines()[0][:500])


def artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store, artifacts beside the database (``mlartifacts/``) rather than
    MLflow's default ``./mlruns`` under whatever folder the command ran in; else None."""
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    return f"{folder.as_uri()}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', experiment)}"


class Experiments:
    """Experiment ids by name, created (or restored from the bin) on first use."""

    def __init__(self, client: Any) -> None:
        self._client, self._ids = client, {}

    def id_for(self, name: str) -> str:
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = self._lookup(name)
        return found

    def _lookup(self, name: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            return self._client.create_experiment(
                name, artifact_location=artifact_location(self._client.tracking_uri, name))
        if experiment.lifecycle_stage == "deleted":
            self._client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
