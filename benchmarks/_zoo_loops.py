"""The two training loops bench_zoo.py compares, the JPEG folder it feeds them from, and
what it measures besides (a model's FLOPs, the loader's own rate).

``plan`` is bench_zoo's ``Plan``: its ``device``, ``amp``, ``channels_last`` and
``compile_backend`` are all these read.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from zoo._compat import import_timm
from zoo.training.ddp import Dist
from zoo.training.loop import Trainer
from zoo.training.schedule import WarmupCosine
from zoo.training.strategies import param_groups

__all__ = ["LR", "SMOOTHING", "WEIGHT_DECAY", "PlainLoop", "forward_flops", "image_folder",
           "loader_rate", "make_model", "mean_kib", "sync", "zoo_trainer"]

SMOOTHING, WEIGHT_DECAY, LR = 0.1, 0.05, 1e-3


def make_model(plan: Any, name: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = import_timm().create_model(name, pretrained=False, num_classes=num_classes)
    fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
    return model.to(plan.device, memory_format=fmt)


def _compile(plan: Any, model: torch.nn.Module) -> Any:
    return torch.compile(model, backend=plan.compile_backend)


def zoo_trainer(plan: Any, model: torch.nn.Module, compiled: bool, total_steps: int) -> Trainer:
    """The Trainer exactly as ``zoo.finetune`` builds it (single process)."""
    device = torch.device(plan.device)
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=LR,
                                  fused=device.type == "cuda")
    schedule = WarmupCosine(LR, total_steps=total_steps, warmup_steps=total_steps // 10)
    return Trainer(_compile(plan, model) if compiled else model, model, optimizer, schedule,
                   dist=Dist(device=device), amp_dtype=torch.bfloat16 if plan.amp else None,
                   channels_last=plan.channels_last, label_smoothing=SMOOTHING)


class PlainLoop:
    """What an expert writes by hand: same loss, optimizer and precision, nothing else."""

    def __init__(self, plan: Any, model: torch.nn.Module, compiled: bool) -> None:
        self.device = torch.device(plan.device)
        self.model = _compile(plan, model) if compiled else model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY,
                                           fused=self.device.type == "cuda")
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
        self.fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
        self.amp = plan.amp

    def train_epoch(self, loader) -> int:
        self.model.train()
        seen = 0
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True, memory_format=self.fmt)
            labels = labels.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = self.criterion(self.model(images), labels)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            seen += labels.shape[0]
        sync(self.device)
        return seen


def forward_flops(model: torch.nn.Module, image_size: int) -> float:
    """FLOPs of one image's forward pass (torch's FLOP counter: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, image_size, image_size, device=param.device, dtype=param.dtype))
    model.train(was_training)
    return float(counter.get_total_flops())


def loader_rate(loaders: Any, epoch: int, device: torch.device) -> float:
    """Images/s of one training epoch's batches with no model: what the pipeline can give."""
    loaders.set_epoch(epoch)
    began, seen = time.perf_counter(), 0
    for _images, labels in loaders.train:
        seen += labels.shape[0]
    sync(device)
    return seen / (time.perf_counter() - began)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def image_folder(root: Path, per_class: int, size: int, processes: int | None = 1) -> Path:
    """3 classes of noisy JPEGs (made once per folder; a noisy 384 px JPEG weighs about what
    an average ImageNet photo does, about 110 KiB)."""
    if root.is_dir():
        return root
    chunks = [(root / f"class_{c}", c, range(i, min(i + 100, per_class)), size)
              for c in range(3) for i in range(0, per_class, 100)]
    for folder, *_ in chunks:
        folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(processes or 1, len(chunks)))
    if workers == 1:
        for chunk in chunks:
            _write_images(chunk)
        return root
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_images, chunks))
    return root


def _write_images(chunk: tuple[Path, int, range, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, c, numbers, size = chunk
    rng = np.random.default_rng([c, numbers.start])
    for i in numbers:
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pixels[..., c] = 255 - pixels[..., c] // 4
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def mean_kib(folder: Path) -> float:
    sizes = [p.stat().st_size for p in folder.glob("*/*.jpg")]
    return sum(sizes) / max(len(sizes), 1) / 1024
