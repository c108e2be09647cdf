"""Fine-tuned zoo models into MLflow: the ``cairn.mlflow_models`` plugin of the registry's
MLflow bridge.

For a PyTorch fine-tune run (contract 1: params ``model``, ``num_classes``, ``image_size``,
artifact ``model.safetensors``) the model is rebuilt with ``zoo.create(model, num_classes,
pretrained=False)``, its weights loaded from the checkpoint, saved with MLflow's PyTorch
flavour (``torch.export``, so loading needs torch only; signature and input example
included, so ``mlflow models serve`` can serve it),
logged into the run's artifacts under ``model/`` and registered in MLflow's Model Registry.
Every MLflow call goes through the given client: no global tracking URI is touched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["log_model"]

ARTIFACT_PATH = "model"
_REQUIREMENTS = ("torch", "timm", "safetensors", "numpy", "cloudpickle")


def log_model(client: Any, run_id: str, record: Any, *, fetch: Callable[[str], Path | None],
              registered_name: str) -> str | None:
    """Log and register the run's fine-tuned PyTorch model; ``"name/version"``, or None when
    the run holds no such model (a Keras run, or no checkpoint)."""
    params = record.params
    if params.get("framework", "torch") != "torch" or "model" not in params:
        return None
    from zoo.export import CHECKPOINT

    checkpoint = fetch(CHECKPOINT)
    if checkpoint is None:
        return None
    model = _rebuild(params, checkpoint)
    with tempfile.TemporaryDirectory(prefix="cairn-mlflow-model-") as tmp:
        _save(model, Path(tmp, ARTIFACT_PATH), record)
        client.log_artifacts(run_id, str(Path(tmp, ARTIFACT_PATH)), ARTIFACT_PATH)
    source = f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}"
    _ensure_registered(client, registered_name, record)
    version = client.create_model_version(registered_name, source, run_id=run_id,
                                          tags={"cairn.run_id": record.id})
    return f"{registered_name}/{version.version}"


def _rebuild(params: dict[str, Any], checkpoint: Path) -> Any:
    import zoo
    from zoo.export import load_safetensors

    model = zoo.create(str(params["model"]), int(params["num_classes"]), pretrained=False)
    load_safetensors(model, checkpoint)
    # The zoo's description object is not needed to serve and would tie the pickle to zoo.
    vars(model).pop("cairn_info", None)
    return model.eval()


def _save(model: Any, path: Path, record: Any) -> None:
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    size = int(record.params.get("image_size", 224))
    # Two images: MLflow exports with torch.export, which fixes a batch dimension of size 1.
    example = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    names = record.params.get("class_names")
    mlflow.pytorch.save_model(
        model, str(path), signature=infer_signature(example, output), input_example=example,
        pip_requirements=_requirements(),
        metadata={"cairn_run_id": record.id, "zoo_model": str(record.params["model"]),
                  "class_names": list(names) if isinstance(names, list) else None})


def _requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            version = metadata.version(name).split("+")[0]
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{name}=={version}")
    return pins


def _ensure_registered(client: Any, name: str, record: Any) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, tags={"cairn.project": record.project},
            description=f"Fine-tuned {record.params['model']} from Cairn run {record.id}")
