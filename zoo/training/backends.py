"""Fine-tune backends: one per framework, each declaring the options it takes.

:func:`zoo.finetune` builds and checks one :class:`~zoo.training.config.FinetuneConfig`,
asks the zoo which framework the model is (:func:`zoo.framework_of`: timm models are
PyTorch, TF Hub models Keras, a catalog card's model is its backbone's) and hands the config
to that framework's backend. An option the backend does not take, given with a value other
than its default, is refused rather than silently ignored. A backend imports its framework
only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo._api import framework_of
from zoo.errors import FinetuneConfigError
from zoo.training._result import FinetuneResult
from zoo.training.config import OPTIONS, STRATEGIES, FinetuneConfig

__all__ = ["BACKENDS", "KERAS", "PYTORCH", "Backend", "backend_for"]


@dataclass(frozen=True)
class Backend:
    """How one framework fine-tunes: the options and strategies it takes, and ``run``."""

    framework: str
    title: str  # how messages name it
    options: frozenset[str]
    run: Callable[[FinetuneConfig, Any], FinetuneResult]  # (config, workspace) -> result
    strategies: tuple[str, ...] = STRATEGIES

    def accept(self, config: FinetuneConfig) -> FinetuneConfig:
        """``config``, or FinetuneConfigError for the first option this backend cannot do."""
        for option, value in config.given().items():
            if option not in self.options:
                raise FinetuneConfigError(option, value, f"does not apply to {self.title} "
                                                         "models")
        if config.strategy not in self.strategies:
            raise FinetuneConfigError("strategy", config.strategy, f"{self.title} models take "
                                      + " or ".join(map(repr, self.strategies)))
        return config


def _run_pytorch(config: FinetuneConfig, workspace: Any) -> FinetuneResult:
    from zoo.training._torch_session import run_finetune

    return run_finetune(config, workspace)


def _run_keras(config: FinetuneConfig, workspace: Any) -> FinetuneResult:
    from zoo.training._keras_session import run_finetune

    return run_finetune(config, workspace)


PYTORCH = Backend("pytorch", "PyTorch", frozenset(OPTIONS) - {"every_n_batches"}, _run_pytorch)
KERAS = Backend("keras", "Keras", frozenset({
    "num_classes", "epochs", "batch_size", "lr", "strategy", "weight_decay", "warmup_epochs",
    "label_smoothing", "early_stopping", "val_fraction", "seed", "image_size", "weights",
    "pretrained", "checkpoint_dir", "project", "run_name", "owner", "progress",
    "every_n_batches"}), _run_keras, strategies=("full", "linear"))
BACKENDS = {backend.framework: backend for backend in (PYTORCH, KERAS)}


def backend_for(model: str) -> Backend:
    """The backend of ``model``'s framework."""
    framework = framework_of(model)
    try:
        return BACKENDS[framework]
    except KeyError:
        raise FinetuneConfigError("model", model, f"is a {framework} model; zoo.finetune "
                                  f"trains {', '.join(BACKENDS)} models") from None
