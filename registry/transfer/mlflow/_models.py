"""Fine-tuned models through MLflow's flavours, by plugins; artifact look-ups.

The registry imports no model code: loggers are found through the ``cairn.mlflow_models``
entry point group (the zoo declares ``zoo._mlflow:log_model``). A logger is called as
``log_model(client, run_id, record, fetch=..., registered_name=...)`` and returns
``"name/version"`` of the registered model version, or None when the run is not its kind.
"""

from __future__ import annotations

import re
import tempfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

__all__ = ["list_files", "log_model", "registered_name"]

GROUP = "cairn.mlflow_models"
_NAME_BAD = re.compile(r"[/:\s]+")


def list_files(client: Any, run_id: str, path: str | None = None) -> list[tuple[str, int]]:
    """Every artifact file of an MLflow run: (path relative to its artifact root, size)."""
    files = []
    for info in client.list_artifacts(run_id, path):
        files.extend(list_files(client, run_id, info.path) if info.is_dir
                     else [(info.path, info.file_size or 0)])
    return files


def registered_name(store, record: Any) -> str:
    """The catalog card's name when a card lists this run, else ``project-run name``."""
    from registry.store import cards

    for card in cards.rows(store):
        name, runs = card.name, card.front_matter.get("runs") or []
        if any(isinstance(r, str) and len(r) >= 4 and record.id.startswith(r) for r in runs):
            return name
    base = f"{record.project}-{record.name or record.id[:8]}"
    return _NAME_BAD.sub("-", base).strip(".-") or record.id


def log_model(client: Any, run_id: str, record: Any, data: dict, blobs: Any,
              store: Any) -> tuple[str | None, list[str]]:
    """Log and register the run's model with the first plugin that knows it."""
    names = {a["name"]: a["sha256"] for a in data.get("artifacts", [])}
    if "model" not in record.params or not names:
        return None, []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
        def fetch(name: str) -> Path | None:
            if name not in names:
                return None
            return blobs.get(names[name], Path(tmp, "files", name))

        name = registered_name(store, record)
        for ep in entry_points(group=GROUP):
            try:
                logged = ep.load()(client, run_id, record, fetch=fetch, registered_name=name)
            except Exception as exc:  # a plugin's failure is reported, not fatal
                problems.append(f"model logger {ep.name!r} failed: {exc}")
                continue
            if logged:
                return logged, problems
    return None, problems
