"""What a fine-tune trains, and at which learning rate.

- ``linear``: only the classifier head (a linear probe on frozen features).
- ``partial``: the head and the last ``train_stages`` stages of the backbone, stages being
  timm's coarse parameter groups (``model.group_matcher(coarse=True)``: a ResNet's
  ``layer1..4``, a ViT's blocks); the stem never trains.
- ``full``: everything.

Frozen normalisation layers also keep their running statistics (they stay in eval mode while
the rest trains: :func:`train_mode`). Optimizer groups come from timm's helpers: weight decay
skips biases, norms and the model's ``no_weight_decay()`` names; with ``layer_decay`` each
layer's lr is scaled by ``layer_decay ** (depth from the top)`` (BEiT's layer-wise decay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from zoo.errors import FinetuneConfigError

__all__ = ["Trainable", "apply_strategy", "head_parameter_names", "param_groups",
           "stage_groups", "train_mode"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Trainable:
    """How many parameters train, of how many."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def apply_strategy(model: nn.Module, strategy: str, train_stages: int = 1) -> Trainable:
    """Freeze what ``strategy`` does not train (sets ``requires_grad``); returns the counts."""
    if strategy == "full":
        names = {n for n, _ in model.named_parameters()}
    elif strategy == "linear":
        names = head_parameter_names(model)
    elif strategy == "partial":
        names = _partial(model, train_stages)
    else:
        raise FinetuneConfigError("strategy", strategy, "choose full, partial or linear")
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
    total = sum(p.numel() for p in model.parameters())
    return Trainable(sum(p.numel() for p in model.parameters() if p.requires_grad), total)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters (``model.get_classifier()``, timm's API)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module):
        raise FinetuneConfigError("strategy", "linear", f"{type(model).__name__} has no "
                                  "get_classifier(): only 'full' can train it")
    ids = {id(p) for p in head.parameters()}
    names = {n for n, p in model.named_parameters() if id(p) in ids}
    if not names:
        raise FinetuneConfigError("strategy", "linear", "the model's classifier has no "
                                  "parameters (num_classes=0?)")
    return names


def stage_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names per coarse group, in depth order: stem first, head (with any neck)
    last."""
    if not hasattr(model, "group_matcher"):
        raise FinetuneConfigError("strategy", "partial", f"{type(model).__name__} has no "
                                  "group_matcher() to find its stages; use 'full' or 'linear'")
    from timm.models import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=True))
    return [groups[k] for k in sorted(groups)]


def _partial(model: nn.Module, train_stages: int) -> set[str]:
    groups = stage_groups(model)
    stages = len(groups) - 2  # less the stem and the head
    if not 1 <= train_stages <= stages:
        raise FinetuneConfigError("train_stages", train_stages, f"this model has {stages} "
                                  "stages; to train all of them use strategy='full'")
    names = {n for group in groups[-(train_stages + 1):] for n in group}
    return names | head_parameter_names(model)


def param_groups(model: nn.Module, weight_decay: float,
                 layer_decay: float | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups over the trainable parameters, each with an ``lr_scale``."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    if layer_decay is None:
        groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay)
    else:
        groups = param_groups_layer_decay(model, weight_decay, no_weight_decay_list=no_decay,
                                          layer_decay=layer_decay)
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    if not groups:
        raise FinetuneConfigError("strategy", "?", "no parameter is left to train")
    return groups


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, with normalisation layers whose parameters are all frozen kept in
    eval mode, so a linear probe does not drift the backbone's batch statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, _NORMS):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
    return model
