"""``zoo.finetune``: one call from a backbone name and an image folder to a recorded run."""

from __future__ import annotations

import os
from typing import Any

from zoo.training._result import FinetuneResult
from zoo.training.backends import backend_for
from zoo.training.config import FinetuneConfig

__all__ = ["finetune"]


def finetune(model: str, data: str | os.PathLike, *, workspace: Any = None,
             **options: Any) -> FinetuneResult:
    """Fine-tune zoo model ``model`` on the image folder ``data`` (one sub-folder per class)
    and record it as a registry run (in ``workspace``, default: the current one); returns a
    :class:`FinetuneResult`.

    ``options`` are the fields of :class:`~zoo.training.config.FinetuneConfig`, each
    documented there (``epochs=10``, ``lr``, ``strategy="full"``, ``checkpoint_dir``,
    ``project``, ``run_name``...). They are checked before any work, then the model's
    framework trains it: PyTorch (timm and catalog models: AdamW, warmup then cosine,
    linear/partial/full strategies, bf16 and channels_last on CUDA, EMA, resume; DDP under
    ``torchrun``, where rank 0 alone records) or Keras ``fit`` (``tfhub:`` models). An option
    that framework does not take is a FinetuneConfigError. ``pretrained=True`` needs local
    weights (or ``weights=FILE``): a missing file raises WeightsNotFoundError; it never
    silently trains from scratch.
    """
    config = FinetuneConfig.build(model, data, **options)
    backend = backend_for(config.model)
    return backend.run(backend.accept(config), workspace)
