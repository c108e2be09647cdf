"""What a fine-tune hands back (PyTorch and Keras alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.evaluation import Evaluation

__all__ = ["FinetuneResult"]


@dataclass(frozen=True)
class FinetuneResult:
    """The outcome of one fine-tune, recorded as registry run ``run_id``.

    ``best_metric`` is the best validation accuracy, reached at ``best_epoch`` (1-based);
    ``checkpoint`` the best weights (safetensors for PyTorch), None on ranks that do not write;
    ``history`` one dict of metrics per epoch (``epoch``, ``train/loss``, ``val/accuracy``...);
    ``images_per_second`` the steady training throughput (all processes together);
    ``evaluation`` the best model on the validation split, None on ranks that do not evaluate.
    """

    run_id: str
    best_metric: float
    best_epoch: int
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    images_per_second: float = 0.0
    evaluation: Evaluation | None = None
