"""Keras (``tf_keras``) integration: a callback that records ``fit`` into a registry run.

    from zoo.keras import CairnCallback

    with registry.start_run(project="defects") as run:
        model.fit(train, validation_data=val, epochs=5, callbacks=[CairnCallback(run)])

Importing this module imports TensorFlow (``import zoo`` does not). The callback is a Keras 2
callback: ``tensorflow_hub`` layers need Keras 2, so Cairn's Keras models are ``tf_keras``
models. ``zoo.finetune`` of a ``tfhub:`` model uses it (:mod:`zoo.training.backends`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from zoo.errors import FinetuneConfigError
from zoo.sources.tfhub import import_tf

__all__ = ["CairnCallback"]

tf_keras = import_tf().tf_keras


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
