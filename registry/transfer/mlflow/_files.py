"""Artifacts and logged models across the bridge, by value.

Import copies each file of an MLflow run, and of each of its MLflow 3 logged models, into the
registry's artifact store with its sha256, so the run no longer depends on MLflow's storage.
A file over ``max_size`` bytes stays a reference (its MLflow URI, no digest) and is listed as
skipped. A logged model's files are named ``mlflow-models/<name>/<path>`` (its ``MLmodel``
among them, which names its flavours), and the tag ``cairn.mlflow.model.<name>`` links it:
JSON with its model id, flavours, type and status. Export gives such files back to MLflow as a
logged model of the run, the rest as run artifacts.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from registry.artifacts import ArtifactStore
from registry.transfer.mlflow._models import list_files

__all__ = ["MODELS", "MODEL_TAG", "Fetched", "fetch_run_files", "is_model_file",
           "log_models", "model_files"]

MODELS = "mlflow-models/"  # artifact names of logged models' files start so
MODEL_TAG = "cairn.mlflow.model."  # + model name: the link to the logged model (JSON)
DEFAULT_MAX_SIZE = 512 * 2**20


@dataclass
class Fetched:
    """A run's files as artifact records, the tags linking its models, what was skipped."""

    artifacts: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def fetch_run_files(client: Any, run: Any, blobs: ArtifactStore | None,
                    max_size: int | None, tracking_uri: str) -> Fetched:
    """Copy an MLflow run's artifacts and logged models into ``blobs`` (None: references
    only, as before)."""
    info, found = run.info, Fetched()
    start = info.start_time / 1000 if info.start_time else 0.0
    with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp:
        for path, size in sorted(list_files(client, info.run_id)):
            found.artifacts.append(_copied(
                blobs, max_size, path, size, f"{info.artifact_uri}/{path}", start, found,
                lambda p=path: Path(client.download_artifacts(info.run_id, p, tmp))))
        for model in _logged_models(client, run):
            _fetch_model(client, model, blobs, max_size, tracking_uri, tmp, start, found)
    return found


def _copied(blobs: ArtifactStore | None, max_size: int | None, name: str, size: int,
            uri: str, when: float, found: Fetched, download) -> dict[str, Any]:
    record = {"name": name, "sha256": "", "size": size, "uri": uri, "created_time": when}
    if blobs is None or (max_size is not None and size > max_size):
        found.skipped.append(f"{name} ({size:,} bytes, kept at {uri})")
        return record
    sha256, size, stored = blobs.put_file(download())
    return {**record, "sha256": sha256, "size": size, "uri": stored}


def _logged_models(client: Any, run: Any) -> list[Any]:
    if not hasattr(client, "search_logged_models"):  # MLflow 2 has none
        return []
    found = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    return [m for m in found if m.source_run_id == run.info.run_id]


def _fetch_model(client: Any, model: Any, blobs: ArtifactStore | None, max_size: int | None,
                 tracking_uri: str, tmp: str, when: float, found: Fetched) -> None:
    import mlflow.artifacts

    folder = Path(tmp, "models", model.model_id)
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=model.artifact_location, dst_path=str(folder), tracking_uri=tracking_uri))
    base = MODELS + model.name + "/"
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        rel = file.relative_to(local).as_posix()
        found.artifacts.append(_copied(
            blobs, max_size, base + rel, file.stat().st_size,
            f"{model.artifact_location}/{rel}", when, found, lambda f=file: f))
    found.tags[MODEL_TAG + model.name] = json.dumps({
        "model_id": model.model_id, "flavors": _flavors(local / "MLmodel"),
        "model_type": model.model_type, "status": str(model.status)}, sort_keys=True)


def _flavors(mlmodel: Path) -> list[str]:
    try:
        spec = yaml.safe_load(mlmodel.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return sorted((spec or {}).get("flavors") or {}) if isinstance(spec, dict) else []


# -- export ------------------------------------------------------------------------------------


def is_model_file(name: str) -> bool:
    return name.startswith(MODELS)


def model_files(artifacts: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """A run's logged models' files, by model name."""
    models: dict[str, list[Mapping[str, Any]]] = {}
    for a in artifacts:
        if is_model_file(a["name"]) and "/" in a["name"][len(MODELS):]:
            models.setdefault(a["name"][len(MODELS):].split("/", 1)[0], []).append(a)
    return models


def log_models(client: Any, run_id: str, experiment_id: str, data: Mapping[str, Any],
               blobs: ArtifactStore, have: set[str]) -> list[str]:
    """Give MLflow back the logged models of an imported run (those it lacks, by name) as
    logged models of ``run_id``; returns the names logged."""
    logged = []
    for name, files in sorted(model_files(data.get("artifacts", [])).items()):
        if name in have or not all(f["sha256"] for f in files):
            continue
        link = json.loads(data.get("tags", {}).get(MODEL_TAG + name) or "{}")
        with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
            for f in files:
                blobs.get(f["sha256"], Path(tmp, f["name"][len(MODELS) + len(name) + 1:]))
            model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id,
                                               model_type=link.get("model_type"))
            client.log_model_artifacts(model.model_id, tmp)
            client.finalize_logged_model(model.model_id, "READY")
        logged.append(name)
    return logged
