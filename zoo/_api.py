"""The zoo's functions: one interface over every model source."""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path
from typing import Any

from zoo._info import Framework, ModelInfo
from zoo._provenance import WeightsProvenance
from zoo._registry import get_source, is_plugin, resolve, source_names
from zoo.errors import ZooError

__all__ = ["create", "framework_of", "info", "list", "list_sources", "pull"]


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

    Pretrained weights come from ``weights=``, the team's weights folder or the hub caches
    without any network call; otherwise they are downloaded (from the Hugging Face hub, the
    team's mirror, or TF Hub) and verified. Offline, missing weights raise
    :class:`~zoo.errors.WeightsNotFoundError` saying what to put where; a failed or corrupt
    download raises :class:`~zoo.errors.WeightsDownloadError`. ``pretrained=False`` is the
    only way to get random initialisation. The model carries ``cairn_info``, whose
    ``provenance`` says which weights it started from; a registry run active in this process
    records them as ``base_weights.*`` params.
    """
    src, local_name = resolve(name)
    model = src.create(local_name, num_classes, pretrained=pretrained, weights=weights)
    _record(getattr(model, "cairn_info", None))
    return model


def _record(info: ModelInfo | None) -> None:
    """Put the weights' provenance on the active run, if any (a second, different backbone
    in the same run is warned of, not recorded over the first)."""
    import registry
    from registry.errors import ParamError

    run = registry.active_run()
    if run is None or info is None or info.provenance is None:
        return
    try:
        run.log_params(info.provenance.params())
    except ParamError as exc:
        warnings.warn(f"run {run.id} already records other base weights: {exc}", stacklevel=3)


def pull(name: str, to: str | Path | None = None) -> WeightsProvenance:
    """Put the pretrained weights of ``name`` into the team's weights folder, or under the
    folder ``to`` (as ``<to>/<source>/...``): copied from this machine's caches, else
    downloaded and verified. Copy that folder to an offline machine (``CAIRN_WEIGHTS_DIR``
    or ``[zoo] weights_dir``) and ``create`` works there without network. Returns the
    weights' provenance; a source without downloadable weights raises ZooError."""
    src, local_name = resolve(name)
    method = getattr(src, "pull", None)
    if not callable(method):
        raise ZooError(f"{name}: its source keeps its own weights; there is nothing to pull")
    return method(local_name, Path(to).expanduser().resolve() if to is not None else None)


def framework_of(name: str) -> Framework:
    """``"pytorch"`` or ``"keras"``: what :func:`create` builds for ``name``. Cheap: asks the
    source (a source without a ``framework`` method answers through its ``info``)."""
    src, local_name = resolve(name)
    answer = getattr(src, "framework", None)
    return answer(local_name) if callable(answer) else src.info(local_name).framework


def list_sources() -> builtins.list[str]:
    """Names of the model sources, plugins included, the default (timm) first."""
    return source_names()
