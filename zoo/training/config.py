"""A fine-tune's options: declared once here, checked once up front so bad input fails
before any work.

Every field after ``model`` and ``data`` is a keyword option of :func:`zoo.finetune` and, as
a ``--kebab-case`` flag, of ``cairn zoo finetune``; its ``doc`` (the flag's help) says what it
does. Options the
model's framework does not take are refused by its backend (:mod:`zoo.training.backends`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.training._checks import AUGMENT_OPTIONS, bad, check_augment, finite, positive_int

__all__ = ["AMP_CHOICES", "AUGMENT_OPTIONS", "DECODE_CHOICES", "DEFAULT_LR", "OPTIONS",
           "STRATEGIES", "FinetuneConfig", "default_run_name"]

STRATEGIES = ("full", "partial", "linear")
DECODE_CHOICES = ("auto", "workers", "device")
AMP_CHOICES = ("auto", "bf16", "off")
# Learning rates that suit AdamW for each strategy when none is given (a fresh head learns
# fast; a whole pretrained backbone needs a gentle one).
DEFAULT_LR = {"linear": 1e-3, "partial": 5e-4, "full": 2e-4}
_PATHS = ("weights", "checkpoint_dir")


@dataclass(frozen=True)
class FinetuneConfig:
    """Every option of :func:`zoo.finetune`; :meth:`check` rejects bad values."""

    model: str = field(metadata={"doc": "zoo name: 'resnet50.a1_in1k', 'tfhub:NAME', "
                                        "'catalog:NAME[@V]'"})
    data: Path = field(metadata={"doc": "image folder, one sub-folder of RGB images per class"})
    num_classes: int | None = field(default=None, metadata={
        "doc": "classes in the folder (default: its class folders)"})
    epochs: int = field(default=10, metadata={"doc": "passes over the training split"})
    batch_size: int = field(default=32, metadata={
        "doc": "images per step and process (under torchrun, per GPU)"})
    lr: float | None = field(default=None, metadata={
        "doc": "peak learning rate (default by strategy)"})
    strategy: str = field(default="full", metadata={
        "doc": "'linear' (head only), 'partial' (head and last train_stages stages) or 'full'"})
    train_stages: int | None = field(default=None, metadata={
        "doc": "stages trained by 'partial' (default 1)"})
    layer_decay: float | None = field(default=None, metadata={
        "doc": "layer-wise lr decay: lr * decay**depth-from-top, e.g. 0.75"})
    weight_decay: float = field(default=0.05, metadata={
        "doc": "AdamW weight decay (not on biases and norms)"})
    warmup_epochs: float | None = field(default=None, metadata={
        "doc": "linear warmup before the cosine decay (default: a tenth of the epochs, at "
               "most 1)"})
    label_smoothing: float = field(default=0.1, metadata={
        "doc": "label smoothing of the training loss"})
    accum_steps: int = field(default=1, metadata={
        "doc": "micro-batches whose gradients make one optimizer step"})
    ema: float | None = field(default=None, metadata={
        "doc": "keep an EMA of the weights with this decay, validated and published instead "
               "(e.g. 0.999)"})
    early_stopping: int | None = field(default=None, metadata={
        "doc": "patience: epochs without a better validation accuracy before stopping"})
    compile: bool = field(default=False, metadata={"doc": "torch.compile the model"})
    channels_last: bool | None = field(default=None, metadata={
        "doc": "channels_last memory format (default: on CUDA)"})
    amp: str | bool | None = field(default="auto", metadata={
        "doc": "autocast: auto (bf16 on CUDA), bf16 or off"})
    device: str | None = field(default=None, metadata={
        "doc": "cpu, cuda, cuda:1 (default: cuda when present)"})
    workers: int | None = field(default=None, metadata={
        "doc": "loader processes (default: cores - 1, at most 8)"})
    decode: str = field(default="auto", metadata={
        "doc": "where images are decoded and augmented: 'workers' (PIL in the loader "
               "processes), 'device' (nvJPEG and batched augmentation on the training device; "
               "JPEG folders only) or 'auto' (device on CUDA when it can, else workers)"})
    val_fraction: float = field(default=0.2, metadata={
        "doc": "share of each class held out for validation (seeded, stratified)"})
    seed: int = field(default=0, metadata={"doc": "seed of the split, order and initialisation"})
    image_size: int | None = field(default=None, metadata={
        "doc": "input size instead of the model's"})
    augment: bool | Mapping[str, Any] = field(default=True, metadata={
        "doc": "timm's training augmentation (True), none (False), or create_transform "
               "options such as {'scale': (0.5, 1.0), 'vflip': 0.5}"})
    weights: Path | None = field(default=None, metadata={
        "doc": "local pretrained weights instead of the weights convention"})
    pretrained: bool = field(default=True, metadata={
        "doc": "start from local pretrained weights (missing ones raise WeightsNotFoundError; "
               "never from scratch unless False)"})
    checkpoint_dir: Path | None = field(default=None, metadata={
        "doc": "folder of last.pt and the best weights (default: "
               "<workspace>/.cairn/finetune/<run id>)"})
    resume: bool | Path = field(default=False, metadata={
        "doc": "continue from checkpoint_dir's last.pt (True) or from a checkpoint file"})
    project: str | None = field(default=None, metadata={"doc": "registry project"})
    run_name: str | None = field(default=None, metadata={
        "doc": "run name (default: '<model> on <data folder name>')"})
    owner: str | None = field(default=None, metadata={
        "doc": "run owner (default: the workspace's)"})
    progress: bool | None = field(default=None, metadata={
        "doc": "a progress bar (default: on a terminal)"})
    every_n_batches: int | None = field(default=None, metadata={
        "doc": "also record batch/ metrics every this many batches"})

    @classmethod
    def build(cls, model: str, data: str | os.PathLike, **given: Any) -> FinetuneConfig:
        """A checked config from ``zoo.finetune``'s arguments (paths may be text)."""
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise TypeError(f"finetune() got an unexpected keyword argument {unknown[0]!r}")
        for key in _PATHS:
            if given.get(key) is not None:
                given[key] = Path(given[key])
        if given.get("resume") is not None and not isinstance(given["resume"], bool):
            given["resume"] = Path(given["resume"])
        if given.get("run_name") is None:
            given["run_name"] = default_run_name(model, data)
        return cls(model=model, data=Path(data), **given).check()

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults: what the caller asked for."""
        return {f.name: getattr(self, f.name) for f in OPTIONS.values()
                if getattr(self, f.name) != f.default}

    def check(self) -> FinetuneConfig:
        """This config, or FinetuneConfigError naming the first bad option."""
        self._check_schedule()
        self._check_regularisation()
        self._check_data()
        if self.amp not in (*AMP_CHOICES, True, False, None):
            bad("amp", self.amp, "choose auto, bf16 or off (float16 is not supported: use bf16)")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            bad("workers", self.workers, "must be a non-negative integer")
        if self.decode not in DECODE_CHOICES:
            bad("decode", self.decode, f"choose one of {', '.join(DECODE_CHOICES)}")
        if self.resume is True and self.checkpoint_dir is None:
            bad("resume", True, "needs checkpoint_dir (the folder of the run to resume), or "
                                "give the checkpoint file: resume=PATH")
        return self

    def _check_schedule(self) -> None:
        for option in ("epochs", "batch_size", "accum_steps"):
            positive_int(option, getattr(self, option))
        if self.strategy not in STRATEGIES:
            bad("strategy", self.strategy, f"choose one of {', '.join(STRATEGIES)}")
        if self.train_stages is not None:
            if self.strategy != "partial":
                bad("train_stages", self.train_stages, "only applies to strategy='partial'")
            positive_int("train_stages", self.train_stages)
        if self.lr is not None and not finite(self.lr, low=0.0, open_low=True):
            bad("lr", self.lr, "must be a positive number")
        if self.layer_decay is not None and not finite(self.layer_decay, 0.0, 1.0, True):
            bad("layer_decay", self.layer_decay, "must be in (0, 1]; 0.65-0.85 is usual")
        if self.warmup_epochs is not None and (not finite(self.warmup_epochs, low=0.0)
                                               or self.warmup_epochs >= self.epochs):
            bad("warmup_epochs", self.warmup_epochs, "must be >= 0 and less than epochs")

    def _check_regularisation(self) -> None:
        if not finite(self.weight_decay, low=0.0):
            bad("weight_decay", self.weight_decay, "must be a non-negative number")
        if not finite(self.label_smoothing, 0.0, 1.0) or self.label_smoothing >= 1.0:
            bad("label_smoothing", self.label_smoothing, "must be in [0, 1)")
        if self.ema is not None and not (finite(self.ema, 0.0, 1.0, True) and self.ema < 1):
            bad("ema", self.ema, "is a decay in (0, 1), e.g. 0.999")
        for option in ("early_stopping", "every_n_batches"):
            if getattr(self, option) is not None:
                positive_int(option, getattr(self, option))

    def _check_data(self) -> None:
        for option in ("image_size", "num_classes"):
            if getattr(self, option) is not None:
                positive_int(option, getattr(self, option))
        check_augment(self.augment)

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
        skip = ("progress", "checkpoint_dir", "owner", "run_name", "project", "every_n_batches")
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()
               if k not in skip}
        out["lr"] = self.learning_rate
        out["warmup_epochs"] = self.warmup
        out["train_stages"] = self.stages if self.strategy == "partial" else None
        out["resume"] = str(self.resume_file()) if self.resume_file() else None
        return out


def default_run_name(model: str, data: str | os.PathLike) -> str:
    """A fine-tune's run name when none is given: ``'resnet50.a1_in1k on defects'``, the
    model and the data folder's name (``..`` and ``.`` resolved, symlinks kept)."""
    folder = Path(os.path.abspath(data)).name
    return f"{model} on {folder}" if folder else model


# The options (every field but ``model`` and ``data``) by name: their defaults and ``doc``.
OPTIONS: dict[str, Field] = {f.name: f for f in fields(FinetuneConfig)
                             if f.default is not MISSING}
