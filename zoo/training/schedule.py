"""Learning-rate schedule: linear warmup, then cosine decay to ``min_factor``, per optimizer
step. Stateless (a function of the step), so resuming needs only the step count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["WarmupCosine"]


@dataclass(frozen=True)
class WarmupCosine:
    """``factor(step)`` scales each group's base lr (``lr * lr_scale``)."""

    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    min_factor: float = 0.0

    def factor(self, step: int) -> float:
        """Multiplier for the lr of optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: Any, step: int) -> float:
        """Set every group's lr for ``step``; returns the base lr now."""
        lr = self.base_lr * self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr
