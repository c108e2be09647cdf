"""A fine-tune's options, checked once up front so bad input fails before any work."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.errors import FinetuneConfigError

__all__ = ["AUGMENT_OPTIONS", "STRATEGIES", "FinetuneConfig"]

STRATEGIES = ("full", "partial", "linear")
AMP_CHOICES = ("auto", "bf16", "off")
# Learning rates that suit AdamW for each strategy when none is given (a fresh head learns
# fast; a whole pretrained backbone needs a gentle one).
DEFAULT_LR = {"linear": 1e-3, "partial": 5e-4, "full": 2e-4}
# The training options of timm's create_transform that ``augment`` may set.
AUGMENT_OPTIONS = ("scale", "ratio", "hflip", "vflip", "color_jitter", "auto_augment",
                   "re_prob", "re_mode", "re_count")


@dataclass(frozen=True)
class FinetuneConfig:
    """Every option of :func:`zoo.finetune` (see there); ``check`` rejects bad values."""

    model: str
    data: Path
    num_classes: int | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None
    strategy: str = "full"
    train_stages: int | None = None
    layer_decay: float | None = None
    weight_decay: float = 0.05
    warmup_epochs: float | None = None
    label_smoothing: float = 0.1
    accum_steps: int = 1
    ema: float | None = None
    early_stopping: int | None = None
    compile: bool = False
    channels_last: bool | None = None
    amp: str | bool | None = "auto"
    device: str | None = None
    workers: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    image_size: int | None = None
    augment: bool | Mapping[str, Any] = True
    weights: Path | None = None
    pretrained: bool = True
    checkpoint_dir: Path | None = None
    resume: bool | Path = False
    project: str | None = None
    run_name: str | None = None
    owner: str | None = None
    progress: bool | None = None

    def check(self) -> FinetuneConfig:
        """This config, or FinetuneConfigError naming the first bad option."""
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("accum_steps", self.accum_steps)
        if self.strategy not in STRATEGIES:
            _bad("strategy", self.strategy, f"choose one of {', '.join(STRATEGIES)}")
        if self.train_stages is not None:
            if self.strategy != "partial":
                _bad("train_stages", self.train_stages, "only applies to strategy='partial'")
            _positive_int("train_stages", self.train_stages)
        if self.lr is not None and not _finite(self.lr, low=0.0, open_low=True):
            _bad("lr", self.lr, "must be a positive number")
        if self.layer_decay is not None and not _finite(self.layer_decay, 0.0, 1.0, True):
            _bad("layer_decay", self.layer_decay, "must be in (0, 1]; 0.65-0.85 is usual")
        if not _finite(self.weight_decay, low=0.0):
            _bad("weight_decay", self.weight_decay, "must be a non-negative number")
        if self.warmup_epochs is not None and (not _finite(self.warmup_epochs, low=0.0)
                                               or self.warmup_epochs >= self.epochs):
            _bad("warmup_epochs", self.warmup_epochs, "must be >= 0 and less than epochs")
        if not _finite(self.label_smoothing, 0.0, 1.0) or self.label_smoothing >= 1.0:
            _bad("label_smoothing", self.label_smoothing, "must be in [0, 1)")
        if self.ema is not None and not (_finite(self.ema, 0.0, 1.0, True) and self.ema < 1):
            _bad("ema", self.ema, "is a decay in (0, 1), e.g. 0.999")
        if self.early_stopping is not None:
            _positive_int("early_stopping", self.early_stopping)
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            _bad("workers", self.workers, "must be a non-negative integer")
        if self.image_size is not None:
            _positive_int("image_size", self.image_size)
        if self.num_classes is not None:
            _positive_int("num_classes", self.num_classes)
        _check_augment(self.augment)
        if self.amp not in (*AMP_CHOICES, True, False, None):
            _bad("amp", self.amp, "choose auto, bf16 or off (float16 is not supported: use bf16)")
        if self.resume is True and self.checkpoint_dir is None:
            _bad("resume", True, "needs checkpoint_dir (the folder of the run to resume), or "
                                 "give the checkpoint file: resume=PATH")
        return self

    @property
    def learning_rate(self) -> float:
        """``lr``, or the strategy's default."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.strategy]

    @property
    def warmup(self) -> float:
        """Warmup epochs: ``warmup_epochs``, or a tenth of the epochs, at most one."""
        return self.warmup_epochs if self.warmup_epochs is not None else min(1.0, self.epochs / 10)

    @property
    def stages(self) -> int:
        """Stages trained by the partial strategy (1 unless given)."""
        return self.train_stages or 1

    def resume_file(self) -> Path | None:
        """The checkpoint to resume from, if resuming."""
        if self.resume is False or self.resume is None:
            return None
        if self.resume is True:
            return Path(self.checkpoint_dir or ".") / "last.pt"
        return Path(os.fspath(self.resume)).expanduser()

    def params(self) -> dict[str, Any]:
        """The training config as registry params (paths as text, resolved defaults)."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()
               if k not in ("progress", "checkpoint_dir", "owner", "run_name", "project")}
        out["lr"] = self.learning_rate
        out["warmup_epochs"] = self.warmup
        out["train_stages"] = self.stages if self.strategy == "partial" else None
        out["resume"] = str(self.resume_file()) if self.resume_file() else None
        return out


def _check_augment(augment: Any) -> None:
    if isinstance(augment, bool):
        return
    if not isinstance(augment, Mapping):
        _bad("augment", augment, "True (timm's standard), False (none) or a mapping of "
                                 f"timm transform options: {', '.join(AUGMENT_OPTIONS)}")
    unknown = sorted(set(augment) - set(AUGMENT_OPTIONS))
    if unknown:
        _bad("augment", augment, f"unknown option {unknown[0]!r}; known: "
                                 f"{', '.join(AUGMENT_OPTIONS)}")
    for key in ("scale", "ratio"):
        if key in augment and not _range(augment[key], 1.0 if key == "scale" else None):
            _bad("augment", augment, f"{key} must be two numbers low <= high"
                                     + (" in (0, 1]" if key == "scale" else ", both > 0"))
    for key in ("hflip", "vflip", "re_prob"):
        if key in augment and not _finite(augment[key], 0.0, 1.0):
            _bad("augment", augment, f"{key} is a probability in [0, 1]")


def _range(value: Any, high: float | None) -> bool:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    low, top = value
    return (_finite(low, 0.0, high, True) and _finite(top, 0.0, high, True) and low <= top)


def _positive_int(option: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        _bad(option, value, "must be a positive integer")


def _finite(value: Any, low: float | None = None, high: float | None = None,
            open_low: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if low is not None and (value < low or (open_low and value == low)):
        return False
    return high is None or value <= high


def _bad(option: str, value: Any, reason: str) -> None:
    raise FinetuneConfigError(option, value, reason)
