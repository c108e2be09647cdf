"""The training and validation loops.

The training step is kept as lean as a hand-written loop: the running loss and accuracy are
summed on the device and read back once per epoch (and every ``Progress.every`` steps while
a progress bar shows), so no step waits for the GPU. Gradients accumulate over
``accum_steps`` micro-batches without DDP synchronisation until the last one.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo.training._progress import Progress
from zoo.training.ddp import Dist
from zoo.training.schedule import WarmupCosine
from zoo.training.strategies import train_mode

__all__ = ["EpochStats", "Trainer"]


@dataclass(frozen=True)
class EpochStats:
    """One pass over a loader, summed over every process."""

    loss: float
    accuracy: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


class Trainer:
    """Runs epochs of ``model`` (possibly DDP-wrapped and compiled) over loaders.

    ``raw`` is the plain module inside (its mode is set, EMA reads it); ``ddp`` the
    DistributedDataParallel wrapper when there is one (for ``no_sync``).
    """

    def __init__(self, model: nn.Module, raw: nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: WarmupCosine, *, dist: Dist, amp_dtype: torch.dtype | None = None,
                 channels_last: bool = False, accum_steps: int = 1,
                 label_smoothing: float = 0.0, ema: Any = None, ddp: Any = None,
                 step: int = 0) -> None:
        self.model, self.raw, self.optimizer, self.schedule = model, raw, optimizer, schedule
        self.dist, self.device, self.amp_dtype = dist, dist.device, amp_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.accum_steps, self.ema, self.ddp, self.step = accum_steps, ema, ddp, step
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.lr = schedule.apply(optimizer, step)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        if sync or self.ddp is None:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def train_epoch(self, loader: Any, progress: Progress | None = None) -> EpochStats:
        """One epoch of training; returns the mean loss, accuracy and throughput."""
        train_mode(self.raw)
        model, optimizer, device, fmt = self.model, self.optimizer, self.device, self.memory_format
        accum, total = self.accum_steps, len(loader)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        start = time.perf_counter()
        for i, (images, labels) in enumerate(loader):
            images = images.to(device, non_blocking=True, memory_format=fmt)
            labels = labels.to(device, non_blocking=True)
            sync = (i + 1) % accum == 0 or i + 1 == total
            with self._no_sync(sync):
                with self._autocast():
                    logits = model(images)
                    loss = self.criterion(logits, labels)
                (loss / accum if accum > 1 else loss).backward()
            if sync:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.lr = self.schedule.apply(optimizer, self.step)
                if self.ema is not None:
                    self.ema.update(self.raw, step=self.step)
            with torch.no_grad():
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.argmax(1) == labels).sum()
            seen += labels.shape[0]
            if progress is not None and progress.due(i):
                progress.show(i + 1, loss_sum.item() / seen, correct.item() / seen, seen)
        return self._stats(loss_sum, correct, seen, start)

    @torch.no_grad()
    def validate(self, model: nn.Module, loader: Any) -> EpochStats:
        """Mean cross-entropy and accuracy of ``model`` on this process's shard of
        ``loader``, summed over processes (no label smoothing)."""
        was_training = model.training
        model.eval()
        device, fmt = self.device, self.memory_format
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        start = time.perf_counter()
        try:
            for images, labels in loader:
                images = images.to(device, non_blocking=True, memory_format=fmt)
                labels = labels.to(device, non_blocking=True)
                with self._autocast():
                    logits = model(images)
                loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
                correct += (logits.argmax(1) == labels).sum()
                seen += labels.shape[0]
        finally:
            model.train(was_training)
        return self._stats(loss_sum, correct, seen, start)

    def _stats(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int,
               start: float) -> EpochStats:
        """All-reduce the sums (the one device read of the epoch) and time it."""
        totals = self.dist.sum(torch.stack([loss_sum.double(), correct.double(),
                                            torch.tensor(seen, dtype=torch.float64,
                                                         device=self.device)]))
        loss, hits, n = totals.tolist()
        seconds = time.perf_counter() - start
        return EpochStats(loss / n if n else float("nan"), hits / n if n else 0.0, int(n),
                          seconds)
