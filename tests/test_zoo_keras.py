"""Keras training into the registry: CairnCallback on its own, and the fine-tune of a tiny
TF Hub-style SavedModel (built here) on a tiny PNG folder, end to end through
``zoo.finetune``. The fine-tune runs on SQLite only: what it records goes through the same
registry calls as any run, whose dialects are tested in the registry's own tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

if any(importlib.util.find_spec(m) is None for m in ("tensorflow", "tensorflow_hub", "tf_keras")):
    pytest.skip("the tfhub extra is not installed: pip install 'cairn[tfhub]'",
                allow_module_level=True)

import numpy as np
from PIL import Image

import registry
import zoo
from registry.config import Workspace
from tests.test_zoo_tfhub import KERAS3, needs_keras3, save_keras2, save_keras3
from zoo.errors import FinetuneConfigError
from zoo.keras import CairnCallback
from zoo.sources.tfhub import import_tf
from zoo.training._keras_data import dataset
from zoo.training._keras_session import CHECKPOINT, _Best

tf, tf_keras = import_tf().tf, import_tf().tf_keras

COLOURS = {"red": (210, 40, 40), "blue": (40, 40, 210)}


def image_folder(root: Path, per_class: int = 6, size: int = 24, suffix: str = ".png") -> Path:
    """Two classes of noisy solid-colour images (easy to tell apart)."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(-25, 25, (size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}{suffix}")
    return root


@pytest.fixture
def sqlite_workspace(tmp_dir: Path) -> Workspace:
    return Workspace(root=tmp_dir, store_url=f"sqlite:///{tmp_dir / 'registry.db'}",
                     artifact_root=str(tmp_dir / "artifacts"), catalog_dir=tmp_dir / "catalog",
                     owner="tester", heartbeat_interval=0.5, flush_interval=0.05)


def tiny_classifier() -> object:
    inputs = tf_keras.Input((3,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs))
    model.compile(optimizer=tf_keras.optimizers.SGD(0.1), metrics=["accuracy"],
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_callback_records_epochs_and_every_n_batches(workspace):
    rng = np.random.default_rng(0)
    x = rng.random((24, 3), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int32)
    with registry.start_run(project="p", workspace=workspace) as run:
        callback = CairnCallback(run, every_n_batches=2, batch_size=4)
        tiny_classifier().fit(x[:16], y[:16], validation_data=(x[16:], y[16:]), batch_size=4,
                              epochs=2, verbose=0, callbacks=[callback])
    history = registry.metric_history(run.id, workspace=workspace)
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr",
                "images_per_second"):
        assert [p.step for p in history[key]] == [1, 2], key
    assert [p.value for p in history["lr"]] == pytest.approx([0.1, 0.1])
    assert [p.step for p in history["batch/loss"]] == [2, 4, 6, 8]  # 4 batches an epoch
    assert all(p.value > 0 for p in history["images_per_second"])
    assert [r["epoch"] for r in callback.history] == [1.0, 2.0]
    assert callback.history[-1]["val/loss"] == history["val/loss"][-1].value


def test_callback_rejects_bad_options():
    with pytest.raises(FinetuneConfigError, match="every_n_batches"):
        CairnCallback(object(), every_n_batches=0)


class _StubModel:
    def __init__(self) -> None:
        self.weights, self.stop_training = 0, False

    def get_weights(self) -> int:
        return self.weights

    def set_weights(self, weights: int) -> None:
        self.weights = weights


def test_best_epoch_wins_on_accuracy_then_loss_and_stops_early():
    best, model = _Best(patience=2), _StubModel()
    best.set_model(model)
    epochs = [(0.5, 0.9), (0.75, 0.8), (0.75, 0.7), (0.5, 0.6), (0.75, 0.75)]
    for epoch, (acc, loss) in enumerate(epochs):
        model.weights = epoch
        best.on_epoch_end(epoch, {"val_accuracy": acc, "val_loss": loss})
        if model.stop_training:
            break
    assert (best.epoch, best.accuracy, epoch) == (3, 0.75, 4)
    best.on_train_end()
    assert model.weights == 2  # the third epoch's weights are back


@pytest.mark.parametrize("suffix", [".png", ".tiff"])  # TensorFlow's decoder, then PIL's
def test_pipeline_resizes_and_normalises(tmp_path, suffix):
    root = image_folder(tmp_path / "data", per_class=2, size=20, suffix=suffix)
    samples = [(p, 0) for p in sorted((root / "red").iterdir())]
    info = zoo.ModelInfo(name="m", source="tfhub", architecture="m", mean=(0.5,) * 3,
                         std=(0.25,) * 3)
    images, labels = next(iter(dataset(samples, info, 16, 2, batch=2)))
    assert images.shape == (2, 16, 16, 3) and labels.numpy().tolist() == [[1, 0], [1, 0]]
    red = np.asarray(Image.open(samples[0][0]).convert("RGB"), np.float32)[..., 0].mean()
    assert float(images[0, ..., 0].numpy().mean()) == pytest.approx(
        (red / 255 - 0.5) / 0.25, abs=0.05)


@pytest.mark.slow
def test_finetune_records_a_keras_run(tmp_dir, sqlite_workspace):
    model_dir = save_keras2(tmp_dir / "backbone")
    data = image_folder(tmp_dir / "data")
    result = zoo.finetune(f"tfhub:{model_dir}", data, epochs=2, batch_size=4, lr=0.01,
                          early_stopping=3, every_n_batches=2, project="defects",
                          run_name="hub", workspace=sqlite_workspace)
    assert len(result.history) == 2 and 1 <= result.best_epoch <= 2
    assert result.best_metric == max(r["val/accuracy"] for r in result.history)
    assert result.evaluation.n == 2 and result.evaluation.class_names == ["blue", "red"]
    assert result.images_per_second > 0

    run = registry.get_run(result.run_id, workspace=sqlite_workspace)
    assert run.status == "FINISHED" and run.tags["cairn.kind"] == "finetune"
    p = run.params
    assert (p["model"], p["framework"], p["num_classes"]) == (f"tfhub:{model_dir}", "keras", 2)
    assert p["class_names"] == ["blue", "red"] and p["image_size"] == 32
    assert (p["epochs"], p["batch_size"], p["lr"], p["strategy"]) == (2, 4, 0.01, "full")
    assert (p["n_train"], p["n_val"]) == (10, 2) and p["trainable_params"] > 0
    assert json.loads(p["preprocessing"])["mean"] == [0.0, 0.0, 0.0]
    assert [(d.role, Path(d.path).name) for d in run.datasets] == [("train", "data")]
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr",
                "images_per_second"):
        assert run.metrics[key].count == 2 and run.metrics[key].last_step == 2, key
    assert run.metrics["eval/accuracy"].last == result.evaluation.accuracy
    assert run.metrics["batch/loss"].last_step == 6  # 3 batches an epoch, every second one
    names = {a.name for a in run.artifacts}
    assert {f"{CHECKPOINT}/saved_model.pb", f"{CHECKPOINT}/cairn.json",
            "eval/confusion_matrix.png", "eval/evaluation.json"} <= names

    meta = json.loads((result.checkpoint / "cairn.json").read_text())
    assert meta["class_names"] == ["blue", "red"] and meta["run_id"] == result.run_id
    reloaded = tf_keras.models.load_model(str(result.checkpoint))
    batch = tf.zeros((1, 32, 32, 3))
    assert reloaded(batch).shape == (1, 2)


@needs_keras3
def test_a_frozen_signature_model_needs_the_linear_strategy(tmp_dir, sqlite_workspace):
    assert KERAS3 is not None
    model_dir = save_keras3(tmp_dir / "k3")
    data = image_folder(tmp_dir / "data", per_class=2)
    with pytest.raises(FinetuneConfigError, match="strategy='linear'"):
        zoo.finetune(f"tfhub:{model_dir}", data, epochs=1, workspace=sqlite_workspace)
    assert registry.list_runs(workspace=sqlite_workspace) == []  # refused before any run


@pytest.mark.parametrize(("options", "match"), [
    ({"strategy": "partial"}, "'full' or 'linear'"),
    ({"num_classes": 3}, "has 2 class folders"),
    ({"epochs": 0}, "positive integer"),
])
def test_bad_options_fail_before_training(tmp_dir, sqlite_workspace, options, match):
    data = image_folder(tmp_dir / "data", per_class=2)
    with pytest.raises(FinetuneConfigError, match=match):
        zoo.finetune("tfhub:/nowhere", data, workspace=sqlite_workspace, **options)

