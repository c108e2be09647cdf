"""The zoo's functions: one interface over every model source."""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path
from typing import Any

from zoo._info import Framework, ModelInfo
from zoo._registry import get_source, is_plugin, resolve, source_names

__all__ = ["create", "framework_of", "info", "list", "list_sources"]


def list(query: str | None = None, source: str | None = None, *,
         pretrained_only: bool = False, available_only: bool = False) -> builtins.list[ModelInfo]:
    """Models of every source (or of ``source``) whose name matches ``query``: a
    case-insensitive substring, or a glob such as ``"resnet5*"``.

    ``pretrained_only`` keeps models with published pretrained weights; ``available_only``
    those whose weights are on this machine. Parameter counts are None here (see :func:`info`).
    A plugin source that fails while every source is listed is left out, with a warning.
    """
    return [entry for name in ([source] if source else source_names())
            for entry in _listed(name, query, every=source is None)
            if (entry.has_pretrained or not pretrained_only)
            and (entry.weights_available or not available_only)]


def _listed(name: str, query: str | None, every: bool) -> builtins.list[ModelInfo]:
    """One source's entries. Listing every source, a plugin that fails is left out with a
    warning (as one that cannot load is): another package's bug must not hide the rest."""
    try:
        return builtins.list(get_source(name).list(query))
    except Exception as exc:
        if not every or not is_plugin(name):
            raise
        warnings.warn(f"model source {name!r} left out: listing its models failed: {exc!r}",
                      stacklevel=3)
        return []


def info(name: str) -> ModelInfo:
    """Everything the zoo knows about ``name``, its parameter count included."""
    src, local_name = resolve(name)
    return src.info(local_name)


def create(name: str, num_classes: int, pretrained: bool = True,
           weights: str | Path | None = None) -> Any:
    """A model with a fresh ``num_classes`` head, ready to fine-tune.

    Pretrained weights load from local files only (``weights=`` or the weights convention,
    see ``zoo.info(name).weights_location``); when they are missing this raises
    :class:`~zoo.errors.WeightsNotFoundError` saying what to put where. ``pretrained=False``
    is the only way to get random initialisation. The model carries ``cairn_info``.
    """
    src, local_name = resolve(name)
    return src.create(local_name, num_classes, pretrained=pretrained, weights=weights)


def framework_of(name: str) -> Framework:
    """``"pytorch"`` or ``"keras"``: what :func:`create` builds for ``name``. Cheap: asks the
    source (a source without a ``framework`` method answers through its ``info``)."""
    src, local_name = resolve(name)
    answer = getattr(src, "framework", None)
    return answer(local_name) if callable(answer) else src.info(local_name).framework


def list_sources() -> builtins.list[str]:
    """Names of the model sources, plugins included, the default (timm) first."""
    return source_names()
