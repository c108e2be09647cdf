"""``zoo.finetune``: one call from a backbone name and an image folder to a recorded run."""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import FinetuneConfigError
from zoo.finetune._config import FinetuneConfig
from zoo.finetune._result import FinetuneResult

__all__ = ["finetune"]

KERAS_PREFIX = "tfhub:"


def finetune(model: str, data: str | os.PathLike, *, num_classes: int | None = None,
             epochs: int = 10, batch_size: int = 32, lr: float | None = None,
             strategy: str = "full", train_stages: int | None = None,
             layer_decay: float | None = None, weight_decay: float = 0.05,
             warmup_epochs: float | None = None, label_smoothing: float = 0.1, accum_steps: int = 1,
             ema: float | None = None, early_stopping: int | None = None,
             compile: bool = False, channels_last: bool | None = None,
             amp: str | bool | None = "auto", device: str | None = None,
             workers: int | None = None, val_fraction: float = 0.2, seed: int = 0,
             image_size: int | None = None, augment: bool | Mapping[str, Any] = True,
             weights: str | os.PathLike | None = None,
             pretrained: bool = True, checkpoint_dir: str | os.PathLike | None = None,
             resume: bool | str | os.PathLike = False, project: str | None = None,
             run_name: str | None = None, owner: str | None = None, workspace: Any = None,
             progress: bool | None = None) -> FinetuneResult:
    """Fine-tune zoo model ``model`` on the image folder ``data`` (one sub-folder per class)
    and record it as a registry run; returns a :class:`FinetuneResult`.

    - data: a seeded, stratified ``val_fraction`` split; preprocessing from the backbone's
      config (``image_size`` overrides its input size); ``augment``: timm's standard training
      augmentation (True), none (False), or options of timm's ``create_transform``, e.g.
      ``{"scale": (0.5, 1.0), "vflip": 0.5}`` for small defects a wide crop would cut out.
    - ``strategy``: ``"linear"`` (head only), ``"partial"`` (head + last ``train_stages``
      stages) or ``"full"``; ``layer_decay`` scales each layer's lr by decay^depth-from-top.
      AdamW (``lr`` defaults by strategy), linear warmup (``warmup_epochs``, default a tenth
      of the epochs, at most one) then cosine, label smoothing,
      ``accum_steps`` gradient accumulation, ``ema`` decay, ``early_stopping`` patience.
    - hardware: ``device`` (default cuda when present), ``amp`` (bf16 autocast on CUDA by
      default), ``channels_last`` (default on CUDA), ``compile`` (torch.compile), ``workers``.
      Under ``torchrun`` it trains with DDP; only rank 0 records and writes files.
    - ``checkpoint_dir`` keeps ``last.pt`` (resume with ``resume=True``, or ``resume=PATH``)
      and ``best.safetensors``; the best weights become the run's ``model.safetensors``.
    - ``pretrained=True`` needs local weights (or ``weights=FILE``): a missing file raises
      WeightsNotFoundError; it never silently trains from scratch.

    ``tfhub:`` models go to :func:`zoo.keras.finetune` with the options that apply there.
    """
    given = _given(locals())
    if str(model).startswith(KERAS_PREFIX):
        return _keras(given)
    config = FinetuneConfig(
        model=model, data=Path(data), num_classes=num_classes, epochs=epochs,
        batch_size=batch_size, lr=lr, strategy=strategy, train_stages=train_stages,
        layer_decay=layer_decay, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
        label_smoothing=label_smoothing, accum_steps=accum_steps, ema=ema,
        early_stopping=early_stopping, compile=compile, channels_last=channels_last, amp=amp,
        device=device, workers=workers, val_fraction=val_fraction, seed=seed,
        image_size=image_size, augment=augment,
        weights=Path(weights) if weights is not None else None,
        pretrained=pretrained, resume=resume if isinstance(resume, bool) else Path(resume),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        project=project, run_name=run_name, owner=owner, progress=progress,
    ).check()
    from zoo.finetune._session import run_finetune

    return run_finetune(config, workspace)


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments of this call that differ from their defaults (model and data always)."""
    defaults = {name: p.default for name, p in inspect.signature(finetune).parameters.items()}
    return {k: v for k, v in arguments.items()
            if k in ("model", "data") or (k in defaults and v is not defaults[k]
                                          and v != defaults[k])}


def _keras(given: dict[str, Any]) -> FinetuneResult:
    """Call ``zoo.keras.finetune`` with the options it takes; an option given here that it
    does not take is an error rather than silently ignored."""
    keras_finetune = importlib.import_module("zoo.keras").finetune
    accepted = inspect.signature(keras_finetune).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for option, value in given.items():
        if option not in accepted and not takes_any:
            raise FinetuneConfigError(option, value, "does not apply to Keras (tfhub:) models")
    return keras_finetune(**given)
