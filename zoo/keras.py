"""Keras (``tf_keras``) integration: a callback that records ``fit`` into a registry run, and
the fine-tune of ``tfhub:`` backbones.

    with registry.start_run(project="defects") as run:
        model.fit(train, validation_data=val, epochs=5, callbacks=[CairnCallback(run)])

    result = zoo.keras.finetune("tfhub:efficientnetv2-b0", "data/defects", epochs=5)

This module is the one place that imports TensorFlow for training (``import zoo`` does not).
The callback is a Keras 2 callback: ``tensorflow_hub`` layers need Keras 2, so Cairn's Keras
models are ``tf_keras`` models.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import FinetuneConfigError
from zoo.finetune._config import DEFAULT_LR, FinetuneConfig
from zoo.finetune._result import FinetuneResult
from zoo.finetune.data import Sample, prepare
from zoo.finetune.schedule import WarmupCosine
from zoo.sources.tfhub import import_tf

__all__ = ["CHECKPOINT", "CairnCallback", "finetune"]

_mods = import_tf()
tf, tf_keras = _mods.tf, _mods.tf_keras

CHECKPOINT = "saved_model"  # the run's checkpoint artifact: a SavedModel folder
_TF_DECODES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})  # others go through PIL
_NO_DECAY = ["bias", "gamma", "beta", "moving_mean", "moving_variance"]


class CairnCallback(tf_keras.callbacks.Callback):
    """Record ``fit`` into registry run ``run``: per epoch, ``train/<metric>`` and
    ``val/<metric>`` (Keras' ``loss``/``val_loss`` names mapped), ``lr`` and
    ``images_per_second``, at step = epoch (1-based); every ``every_n_batches`` batches
    also ``batch/<metric>`` at step = batches so far.

    Images per second count ``batch_size`` images per training batch (or ``num_samples`` per
    epoch where given) over the training time, validation excluded; without either it is
    left out. ``history`` keeps each epoch's record (with ``epoch``).
    """

    def __init__(self, run: Any, *, every_n_batches: int | None = None,
                 batch_size: int | None = None, num_samples: int | None = None) -> None:
        super().__init__()
        for name, value in (("every_n_batches", every_n_batches), ("batch_size", batch_size),
                            ("num_samples", num_samples)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise FinetuneConfigError(name, value, "must be a positive integer")
        self.run, self.every = run, every_n_batches
        self.batch_size, self.num_samples = batch_size, num_samples
        self.history: list[dict[str, float]] = []
        self.epoch_seconds: list[float] = []
        self._batches = self._total_batches = 0
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches, self._start = 0, time.perf_counter()
        self._last = self._start

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches += 1
        self._total_batches += 1
        self._last = time.perf_counter()
        if self.every and self._total_batches % self.every == 0 and logs:
            self.run.log_metrics({f"batch/{k}": float(v) for k, v in logs.items()
                                  if _is_number(v)}, step=self._total_batches)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        seconds = max(self._last - self._start, 1e-9)
        record = {"epoch": float(epoch + 1)}
        record.update({_metric_key(k): float(v) for k, v in (logs or {}).items()
                       if _is_number(v)})
        lr = _current_lr(self.model)
        if lr is not None and "lr" not in record:
            record["lr"] = lr
        images = self.num_samples or (self._batches * self.batch_size if self.batch_size
                                      else None)
        if images:
            record["images_per_second"] = images / seconds
        self.history.append(record)
        self.epoch_seconds.append(seconds)
        self.run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)


def finetune(model: str, data: str | os.PathLike, *, num_classes: int | None = None,
             epochs: int = 10, batch_size: int = 32, lr: float | None = None,
             strategy: str = "full", weight_decay: float = 0.05,
             warmup_epochs: float | None = None, label_smoothing: float = 0.1,
             early_stopping: int | None = None, val_fraction: float = 0.2, seed: int = 0,
             image_size: int | None = None, weights: str | os.PathLike | None = None,
             pretrained: bool = True, checkpoint_dir: str | os.PathLike | None = None,
             project: str | None = None, run_name: str | None = None,
             owner: str | None = None, workspace: Any = None, progress: bool | None = None,
             every_n_batches: int | None = None) -> FinetuneResult:
    """Fine-tune ``tfhub:`` model ``model`` on image folder ``data`` with Keras ``fit`` and
    record it as a registry run (framework ``keras``); returns a FinetuneResult.

    The options mean what they mean for :func:`zoo.finetune`: a seeded, stratified
    ``val_fraction`` split; ``strategy`` ``"full"`` (backbone trained) or ``"linear"`` (head
    only); AdamW with linear warmup then cosine decay, label smoothing; ``early_stopping``
    patience in epochs on validation accuracy. Images are resized to the backbone's input
    size and normalised by its metadata; training adds a random resized crop and flip.
    The best epoch's weights are restored, evaluated on the validation split and saved as a
    SavedModel folder (``checkpoint_dir``, else ``<workspace>/.cairn/finetune/<run id>``),
    recorded as the run's ``saved_model`` artifact with ``cairn.json`` (model, classes,
    preprocessing) inside.
    """
    cfg = FinetuneConfig(
        model=model, data=Path(data), num_classes=num_classes, epochs=epochs,
        batch_size=batch_size, lr=lr, strategy=strategy, weight_decay=weight_decay,
        warmup_epochs=warmup_epochs, label_smoothing=label_smoothing,
        early_stopping=early_stopping, val_fraction=val_fraction, seed=seed,
        image_size=image_size, weights=Path(weights) if weights is not None else None,
        pretrained=pretrained, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        project=project, run_name=run_name, owner=owner, progress=progress).check()
    if strategy not in ("full", "linear"):
        raise FinetuneConfigError("strategy", strategy, "Keras models take 'full' or 'linear'")
    return _Session(cfg, workspace, every_n_batches).run()


class _Session:
    """One Keras fine-tune: data, model, run record, fit, evaluation, checkpoint."""

    def __init__(self, cfg: FinetuneConfig, workspace: Any, every: int | None) -> None:
        self.cfg, self.workspace, self.every = cfg, workspace, every

    def run(self) -> FinetuneResult:
        """Prepare everything that can fail on bad input, then record the run and fit."""
        cfg = self.cfg
        self.classes, self.train, self.val = prepare(cfg.data, cfg.num_classes,
                                                     cfg.val_fraction, cfg.seed)
        tf_keras.utils.set_random_seed(cfg.seed)
        net = self._model()
        self.size = int(net.input_shape[1])
        steps = math.ceil(len(self.train) / cfg.batch_size)
        schedule = WarmupCosine(self.base_lr, total_steps=steps * cfg.epochs,
                                warmup_steps=round(cfg.warmup * steps))
        self._compile(net, schedule)
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
        train_ds = _dataset(self.train, self.info, self.size, k, cfg.batch_size, training=True,
                            seed=cfg.seed)
        val_ds = _dataset(self.val, self.info, self.size, k, cfg.batch_size)
        log = CairnCallback(record, every_n_batches=self.every, batch_size=cfg.batch_size,
                            num_samples=len(self.train))
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
        from zoo._registry import resolve

        cfg = self.cfg
        source, name = resolve(cfg.model)
        extra = {"image_size": cfg.image_size} if cfg.image_size else {}
        if extra and "image_size" not in inspect.signature(source.create).parameters:
            raise FinetuneConfigError("image_size", cfg.image_size, "this model's source "
                                      "builds it at its own input size")
        net = source.create(name, len(self.classes), pretrained=cfg.pretrained,
                            weights=cfg.weights, **extra)
        if not isinstance(net, tf_keras.Model):
            raise FinetuneConfigError("model", cfg.model, "is not a Keras model; "
                                      "zoo.finetune trains timm and catalog models")
        self.info = net.cairn_info
        backbone = _backbone(net)
        if cfg.strategy == "linear":
            backbone.trainable = False
        elif not backbone.trainable:
            raise FinetuneConfigError("strategy", "full", "this SavedModel is called through "
                                      "its serving signature, which TF Hub runs frozen only: "
                                      "use strategy='linear'")
        return net

    @property
    def base_lr(self) -> float:
        return self.cfg.lr if self.cfg.lr is not None else DEFAULT_LR[self.cfg.strategy]

    def _compile(self, net: Any, schedule: WarmupCosine) -> None:
        cfg = self.cfg
        optimizer = tf_keras.optimizers.AdamW(learning_rate=schedule.base_lr,
                                              weight_decay=cfg.weight_decay)
        optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
        loss = tf_keras.losses.CategoricalCrossentropy(from_logits=True,
                                                       label_smoothing=cfg.label_smoothing)
        net.compile(optimizer=optimizer, loss=loss,
                    metrics=[tf_keras.metrics.CategoricalAccuracy(name="accuracy")])

    def _params(self, net: Any) -> dict[str, Any]:
        cfg, size, n_train, n_val = self.cfg, self.size, len(self.train), len(self.val)
        trainable = int(sum(np.prod(w.shape) for w in net.trainable_weights))
        return {"model": cfg.model, "data": str(cfg.data), "num_classes": len(self.classes),
                "class_names": self.classes, "image_size": size, "framework": "keras",
                "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": self.base_lr,
                "strategy": cfg.strategy, "optimizer": "adamw",
                "weight_decay": cfg.weight_decay, "warmup_epochs": cfg.warmup,
                "label_smoothing": cfg.label_smoothing, "early_stopping": cfg.early_stopping,
                "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                "weights": str(cfg.weights) if cfg.weights else None,
                "pretrained": cfg.pretrained, "n_train": n_train, "n_val": n_val,
                "trainable_params": trainable, "total_params": int(net.count_params()),
                "preprocessing": json.dumps(_preprocessing(self.info, size))}

    def _save(self, net: Any, path: Path, run_id: str) -> Path:
        """The best weights as a SavedModel folder, with ``cairn.json`` beside its graph."""
        path.parent.mkdir(parents=True, exist_ok=True)
        net.save(str(path), save_format="tf", include_optimizer=False)
        meta = {"model": self.cfg.model, "class_names": self.classes,
                "num_classes": len(self.classes), "image_size": self.size, "framework": "keras",
                "run_id": run_id, "preprocessing": _preprocessing(self.info, self.size)}
        (path / "cairn.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path


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


def _dataset(samples: list[Sample], info: Any, size: int, k: int, batch: int, *,
             training: bool = False, seed: int = 0) -> Any:
    """A batched, prefetched tf.data pipeline of (normalised image, one-hot label)."""
    paths = [str(p) for p, _ in samples]
    labels = np.array([label for _, label in samples], dtype=np.int32)
    mean = tf.constant(info.mean or (0.0, 0.0, 0.0), tf.float32)
    std = tf.constant(info.std or (1.0, 1.0, 1.0), tf.float32)
    decode = _tf_decode if all(Path(p).suffix.lower() in _TF_DECODES for p in paths) \
        else _pil_decode

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        image = decode(path)
        image = _augment(image, size, seed) if training else tf.image.resize(image, (size, size))
        image = (tf.cast(image, tf.float32) / 255.0 - mean) / std
        return image, tf.one_hot(label, k)

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def _tf_decode(path: Any) -> Any:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _pil_decode(path: Any) -> Any:
    def read(raw: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(raw.decode()) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)

    image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def _augment(image: Any, size: int, seed: int) -> Any:
    """A random resized crop (8-100% of the area, aspect 3/4-4/3) and a horizontal flip."""
    begin, extent, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([1, 0, 4], tf.float32), min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True, seed=seed)
    image = tf.image.resize(tf.slice(image, begin, extent), (size, size))
    return tf.image.random_flip_left_right(image, seed=seed)


def _evaluate(net: Any, val_ds: Any, val: list[Sample], classes: list[str]) -> Any:
    from zoo.evaluation import from_predictions

    logits = net.predict(val_ds, verbose=0)
    return from_predictions([label for _, label in val], np.argmax(logits, axis=1), classes)


def _preprocessing(info: Any, size: int) -> dict[str, Any]:
    cfg = replace(info, input_size=(3, size, size)).data_config()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def _metric_key(name: str) -> str:
    if name in ("lr", "learning_rate"):
        return "lr"
    return f"val/{name[4:]}" if name.startswith("val_") else f"train/{name}"


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _current_lr(model: Any) -> float | None:
    """The optimizer's learning rate now (a schedule evaluated at the current step)."""
    optimizer = getattr(model, "optimizer", None)
    rate = getattr(optimizer, "learning_rate", None)
    if isinstance(rate, tf_keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    try:
        return None if rate is None else float(tf_keras.backend.get_value(rate))
    except (TypeError, ValueError):
        return None
