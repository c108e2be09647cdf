"""Fine-tuned zoo models logged with MLflow's PyTorch flavour and registered by name."""

from __future__ import annotations

import time

import pytest

import registry
from registry.store import open_store
from registry.store.schema import model_card
from registry.transfer.mlflow import export_runs
from tests.test_mlflow_export import client_for, mlflow_template, mlflow_uri

__all__ = ["mlflow_template", "mlflow_uri"]  # fixtures shared with the export tests

torch = pytest.importorskip("torch")
pytest.importorskip("zoo._compat").import_timm()  # timm behind the zoo's torchvision shim
CLASSES = ["ok", "scratch", "dent"]


def finetune_run(workspace, tmp_path, name="r10t", framework="torch"):
    """A run as zoo.finetune records it (contract 1), with a tiny random resnet10t."""
    import zoo
    from zoo.export import save_safetensors

    model = zoo.create("resnet10t", len(CLASSES), pretrained=False).eval()
    checkpoint = save_safetensors(model, tmp_path / f"{name}.safetensors",
                                  metadata={"model": "resnet10t", "class_names": CLASSES})
    params = {"model": "resnet10t", "num_classes": len(CLASSES), "class_names": CLASSES,
              "image_size": 32, "framework": framework, "epochs": 1}
    with registry.start_run(project="defects", name=name, workspace=workspace, params=params,
                            tags={"cairn.kind": "finetune"}) as run:
        run.log_metric("val/accuracy", 0.5)
        run.log_artifact(checkpoint, "model.safetensors")
    return run.id, model


def test_model_is_logged_registered_and_predicts(workspace, tmp_path, mlflow_uri):
    import mlflow.pyfunc
    import numpy as np

    run_id, model = finetune_run(workspace, tmp_path)
    result = export_runs(mlflow_uri, workspace=workspace)
    assert result.models == ["defects-r10t/1"] and not result.warnings
    client = client_for(mlflow_uri)
    (version,) = client.search_model_versions("name = 'defects-r10t'")
    mirror = client.get_run(result.mlflow_ids[run_id])
    assert version.run_id == mirror.info.run_id and mirror.data.tags["cairn.model"]
    loaded = mlflow.pyfunc.load_model(client.get_model_version_download_uri("defects-r10t", "1"))
    assert list(loaded.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [
        -1, 3, 32, 32]  # any batch size
    sample = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(sample)).numpy()
    np.testing.assert_allclose(loaded.predict(sample), expected, atol=1e-5)
    assert loaded.metadata.metadata["class_names"] == CLASSES

    again = export_runs(mlflow_uri, workspace=workspace)
    assert again.unchanged == [run_id] and not again.models  # registered once


def test_catalog_card_names_the_registered_model(workspace, tmp_path, mlflow_uri):
    run_id, _ = finetune_run(workspace, tmp_path, name="candidate")
    store = open_store(workspace.store_url)
    with store.writing() as conn:
        conn.execute(model_card.insert().values(
            name="scratch-detector", version="1", status="reviewed", path="catalog/x/README.md",
            sha256="0" * 64, front_matter={"name": "scratch-detector", "runs": [run_id[:8]]},
            body="", indexed_time=time.time()))
    result = export_runs(mlflow_uri, workspace=workspace)
    assert result.models == ["scratch-detector/1"]


def test_runs_without_a_torch_checkpoint_log_no_model(workspace, tmp_path, mlflow_uri):
    finetune_run(workspace, tmp_path, name="keras-run", framework="keras")
    with registry.start_run(project="defects", name="plain", workspace=workspace,
                            params={"model": "resnet10t"}):
        pass
    result = export_runs(mlflow_uri, workspace=workspace)
    assert len(result.created) == 2 and not result.models and not result.failed
    assert export_runs(mlflow_uri, workspace=workspace, models=False).updated  # option counts
