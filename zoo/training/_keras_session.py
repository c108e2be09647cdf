"""One Keras fine-tune (the Keras backend): data, model, run record, ``fit``, evaluation,
checkpoint.

Options mean what they mean for PyTorch: a seeded, stratified ``val_fraction`` split;
``strategy`` ``"full"`` (backbone trained) or ``"linear"`` (head only); AdamW with linear
warmup then cosine decay, label smoothing; ``early_stopping`` patience in epochs on validation
accuracy; ``every_n_batches`` also records ``batch/`` metrics. Images are resized to the
backbone's input size and normalised by its metadata; training adds a random resized crop and
flip. The best epoch's weights are restored, evaluated on the validation split and saved as a
SavedModel folder (``checkpoint_dir``, else ``<workspace>/.cairn/finetune/<run id>``), the
run's ``saved_model`` artifact, with ``cairn.json`` (model, classes, preprocessing) inside.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zoo._registry import resolve
from zoo.errors import FinetuneConfigError
from zoo.export import KERAS_CHECKPOINT
from zoo.keras import CairnCallback
from zoo.sources.tfhub import import_tf
from zoo.training._keras_data import dataset, preprocessing
from zoo.training._result import FinetuneResult
from zoo.training.config import FinetuneConfig
from zoo.training.data import Sample, prepare
from zoo.training.schedule import WarmupCosine

__all__ = ["CHECKPOINT", "run_finetune"]

CHECKPOINT = KERAS_CHECKPOINT  # the run's checkpoint artifact: a SavedModel folder
_NO_DECAY = ["bias", "gamma", "beta", "moving_mean", "moving_variance"]

tf_keras = import_tf().tf_keras


def run_finetune(config: FinetuneConfig, workspace: Any = None) -> FinetuneResult:
    """Fine-tune the Keras model ``config.model`` as ``config`` says."""
    return _Session(config, workspace).run()


class _Session:
    def __init__(self, cfg: FinetuneConfig, workspace: Any) -> None:
        self.cfg, self.workspace = cfg, workspace

    def run(self) -> FinetuneResult:
        """Prepare everything that can fail on bad input, then record the run and fit."""
        cfg = self.cfg
        self.classes, self.train, self.val = prepare(cfg.data, cfg.num_classes,
                                                     cfg.val_fraction, cfg.seed)
        tf_keras.utils.set_random_seed(cfg.seed)
        net = self._model()
        self.size = int(net.input_shape[1])
        steps = math.ceil(len(self.train) / cfg.batch_size)
        schedule = WarmupCosine(cfg.learning_rate, total_steps=steps * cfg.epochs,
                                warmup_steps=round(cfg.warmup * steps))
        _compile(net, schedule, cfg)
        import registry

        ws = self.workspace or registry.load_workspace()
        with registry.start_run(project=cfg.project, name=cfg.run_name, params=self._params(net),
                                tags={"cairn.kind": "finetune"}, owner=cfg.owner,
                                workspace=ws) as record:
            record.use_data(cfg.data, role="train")
            return self._fit(net, schedule, record, ws)

    def _fit(self, net: Any, schedule: WarmupCosine, record: Any, ws: Any) -> FinetuneResult:
        """Fit, restore the best epoch, evaluate it and publish it as the checkpoint."""
        cfg, k = self.cfg, len(self.classes)
        train_ds = dataset(self.train, self.info, self.size, k, cfg.batch_size, training=True,
                           seed=cfg.seed)
        val_ds = dataset(self.val, self.info, self.size, k, cfg.batch_size)
        log = CairnCallback(record, every_n_batches=cfg.every_n_batches,
                            batch_size=cfg.batch_size, num_samples=len(self.train))
        best = _Best(cfg.early_stopping)
        verbose = sys.stderr.isatty() if cfg.progress is None else bool(cfg.progress)
        net.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=int(verbose),
                callbacks=[_Schedule(schedule), log, best])
        evaluation = _evaluate(net, val_ds, self.val, self.classes)
        evaluation.log_to(record)
        folder = Path(cfg.checkpoint_dir or ws.state_dir / "finetune" / record.id)
        checkpoint = self._save(net, folder / CHECKPOINT, record.id)
        record.log_artifact(checkpoint, name=CHECKPOINT)
        steady = log.epoch_seconds[1:] or log.epoch_seconds  # the first epoch traces graphs
        return FinetuneResult(run_id=record.id, best_metric=best.accuracy,
                              best_epoch=best.epoch, checkpoint=checkpoint,
                              history=log.history, evaluation=evaluation,
                              images_per_second=len(self.train) * len(steady)
                              / max(sum(steady), 1e-9))

    def _model(self) -> Any:
        cfg = self.cfg
        source, name = resolve(cfg.model)
        extra = {"image_size": cfg.image_size} if cfg.image_size else {}
        if extra and "image_size" not in inspect.signature(source.create).parameters:
            raise FinetuneConfigError("image_size", cfg.image_size, "this model's source "
                                      "builds it at its own input size")
        net = source.create(name, len(self.classes), pretrained=cfg.pretrained,
                            weights=cfg.weights, **extra)
        if not isinstance(net, tf_keras.Model):
            raise FinetuneConfigError("model", cfg.model, "its source said Keras but built "
                                      f"a {type(net).__name__}, not a tf_keras model")
        self.info = net.cairn_info
        backbone = _backbone(net)
        if cfg.strategy == "linear":
            backbone.trainable = False
        elif not backbone.trainable:
            raise FinetuneConfigError("strategy", "full", "this SavedModel is called through "
                                      "its serving signature, which TF Hub runs frozen only: "
                                      "use strategy='linear'")
        return net

    def _params(self, net: Any) -> dict[str, Any]:
        cfg, size, n_train, n_val = self.cfg, self.size, len(self.train), len(self.val)
        trainable = int(sum(np.prod(w.shape) for w in net.trainable_weights))
        return {"model": cfg.model, "data": str(cfg.data), "num_classes": len(self.classes),
                "class_names": self.classes, "image_size": size, "framework": "keras",
                "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.learning_rate,
                "strategy": cfg.strategy, "optimizer": "adamw",
                "weight_decay": cfg.weight_decay, "warmup_epochs": cfg.warmup,
                "label_smoothing": cfg.label_smoothing, "early_stopping": cfg.early_stopping,
                "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                "weights": str(cfg.weights) if cfg.weights else None,
                "pretrained": cfg.pretrained, "n_train": n_train, "n_val": n_val,
                "trainable_params": trainable, "total_params": int(net.count_params()),
                "preprocessing": json.dumps(preprocessing(self.info, size)),
                **(self.info.provenance.params() if self.info.provenance else {})}

    def _save(self, net: Any, path: Path, run_id: str) -> Path:
        """The best weights as a SavedModel folder, with ``cairn.json`` beside its graph."""
        path.parent.mkdir(parents=True, exist_ok=True)
        net.save(str(path), save_format="tf", include_optimizer=False)
        meta = {"model": self.cfg.model, "class_names": self.classes,
                "num_classes": len(self.classes), "image_size": self.size, "framework": "keras",
                "run_id": run_id, "preprocessing": preprocessing(self.info, self.size)}
        (path / "cairn.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path


def _compile(net: Any, schedule: WarmupCosine, cfg: FinetuneConfig) -> None:
    optimizer = tf_keras.optimizers.AdamW(learning_rate=schedule.base_lr,
                                          weight_decay=cfg.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
    loss = tf_keras.losses.CategoricalCrossentropy(from_logits=True,
                                                   label_smoothing=cfg.label_smoothing)
    net.compile(optimizer=optimizer, loss=loss,
                metrics=[tf_keras.metrics.CategoricalAccuracy(name="accuracy")])


class _Schedule(tf_keras.callbacks.Callback):
    """Set the optimizer's learning rate before every batch from a WarmupCosine schedule."""

    def __init__(self, schedule: WarmupCosine) -> None:
        super().__init__()
        self.schedule, self.step = schedule, 0

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.model.optimizer.learning_rate = self.schedule.base_lr * self.schedule.factor(
            self.step)
        self.step += 1


class _Best(tf_keras.callbacks.Callback):
    """Keep the weights of the best epoch (validation accuracy, then loss) in memory, stop
    after ``patience`` epochs without improvement, and restore the best at the end."""

    def __init__(self, patience: int | None) -> None:
        super().__init__()
        self.patience, self.bad = patience, 0
        self.score: tuple[float, float] | None = None
        self.epoch, self.weights = 0, None

    @property
    def accuracy(self) -> float:
        return self.score[0] if self.score else float("nan")

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        score = (float(logs.get("val_accuracy", float("nan"))),
                 -float(logs.get("val_loss", float("nan"))))
        if self.score is None or score > self.score:
            self.score, self.epoch, self.bad = score, epoch + 1, 0
            self.weights = self.model.get_weights()
        else:
            self.bad += 1
            if self.patience is not None and self.bad >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)


def _backbone(net: Any) -> Any:
    try:
        return net.get_layer("backbone")
    except ValueError as exc:
        raise FinetuneConfigError("model", net.name, "has no layer named 'backbone' (a "
                                  "zoo.create tfhub model has one)") from exc


def _evaluate(net: Any, val_ds: Any, val: list[Sample], classes: list[str]) -> Any:
    from zoo.evaluation import from_predictions

    logits = net.predict(val_ds, verbose=0)
    return from_predictions([label for _, label in val], np.argmax(logits, axis=1), classes)
