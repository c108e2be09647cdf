"""timm backbones: listed from the metadata bundled in timm, weights downloaded on first use.

Names are timm's: ``resnet50.a1_in1k``, or a bare architecture (``resnet50``) for its default
pretrained tag. Architectures timm publishes no weights for are listed with no tag. Weights
load from the team's file, the Hugging Face cache or torch hub's cache (see
:mod:`zoo.sources._timm_local`) without any network call; otherwise the file timm's
pretrained cfg names is downloaded from the hub (or the team's mirror) and verified. Offline
(``HF_HUB_OFFLINE``, ``CAIRN_OFFLINE``, ``[zoo] offline``), missing weights raise
:class:`WeightsNotFoundError` saying where to put them.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo import _provenance, _weights
from zoo._compat import import_timm
from zoo._download import hf_download, url_download
from zoo._info import Framework, ModelInfo
from zoo._online import WEIGHTS_ENV, HubSettings, hub_settings
from zoo.errors import (
    NoClassifierError,
    UnknownModelError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from zoo.sources import suggest
from zoo.sources._timm_local import LocalWeights, hf_filenames

__all__ = ["TimmSource"]

SOURCE = "timm"
PREFIXES = ("hf-hub", "hf_hub", "local-dir")  # name schemes timm reads itself


class TimmSource:
    """timm's registry as a zoo source (the default: names without a ``source:`` prefix)."""

    def framework(self, name: str) -> Framework:
        """Every timm model is a PyTorch module."""
        return "pytorch"

    def list(self, query: str | None = None) -> Iterator[ModelInfo]:
        """Pretrained models and weightless architectures whose name matches ``query``."""
        timm, local = import_timm(), LocalWeights.scan()
        pretrained = timm.list_pretrained()
        with_weights = {n.split(".", 1)[0] for n in pretrained}
        names = [*pretrained, *(a for a in timm.list_models() if a not in with_weights)]
        matches = _matcher(query)
        for name in sorted(filter(matches, names), key=_natural_key):
            yield _describe(name, _cfg(name), local)

    def info(self, name: str) -> ModelInfo:
        """Everything about one model, its parameter count included (built on ``meta``)."""
        full, cfg = _resolve(name)
        info = _describe(full, cfg, LocalWeights.scan())
        return replace(info, num_params=_count_on_meta(full))

    def create(self, name: str, num_classes: int, pretrained: bool = True,
               weights: str | Path | None = None) -> Any:
        """A timm model with a ``num_classes`` head. ``weights`` (a local file) implies
        pretrained; the backbone loads strictly, then the head is replaced if it differs."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        timm = import_timm()
        full, cfg = _resolve(name)
        local = LocalWeights.scan()
        info = _describe(full, cfg, local)
        found = _weights_file(info, cfg, pretrained, weights, local)
        if found is None:
            model = timm.create_model(full, pretrained=False, num_classes=num_classes)
        else:
            model = _load(timm, full, cfg, found.path, custom_load=found.custom_load)
            if num_classes != cfg.num_classes and hasattr(model, "reset_classifier"):
                model.reset_classifier(num_classes)
            info = replace(info, weights_available=True, weights_location=str(found.path),
                           provenance=found.provenance)
        _check_head(model, full, num_classes)
        model.cairn_info = replace(info, num_params=sum(p.numel() for p in model.parameters()))
        return model

    def pull(self, name: str, root: Path | None = None) -> _provenance.WeightsProvenance:
        """Put the weights of ``name`` into the team's weights folder (under ``root`` if
        given) as ``<name>.safetensors`` with a provenance sidecar: copied from this
        machine's caches, else downloaded and verified. Files in another format (``.bin``,
        a URL checkpoint) are converted through the model, so their sha256 is the new file's."""
        timm = import_timm()
        full, cfg = _resolve(name)
        local = LocalWeights.scan()
        info = _describe(full, cfg, local)
        target = _weights.weights_dir(SOURCE, root) / f"{full}{_weights.SUFFIX}"
        if target.is_file():
            return _provenance.of_path(target, "team-folder")
        if not info.has_pretrained:
            raise WeightsNotFoundError(info.name, str(target), _hint(info, cfg, hub_settings()))
        found = _weights_file(info, cfg, True, None, local)
        assert found is not None  # pretrained=True never gives random initialisation
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            provenance = _store(timm, full, cfg, found, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        provenance = replace(provenance, location=str(target))
        _provenance.remember(target, provenance)
        return provenance


@dataclass(frozen=True)
class _Found:
    path: Path
    custom_load: bool  # timm's URL download in its original format, loaded as timm does
    provenance: _provenance.WeightsProvenance


def _store(timm: Any, name: str, cfg: Any, found: _Found,
           partial: Path) -> _provenance.WeightsProvenance:
    """Write ``found`` as a timm state dict in safetensors at ``partial``."""
    if found.path.suffix == _weights.SUFFIX and not found.custom_load:
        shutil.copyfile(found.path, partial)
        return found.provenance
    from safetensors.torch import save_file

    model = _load(timm, name, cfg, found.path, custom_load=found.custom_load)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              str(partial))
    return replace(found.provenance, sha256=_provenance.file_sha256(partial),
                   size=partial.stat().st_size)


def _check_head(model: Any, name: str, num_classes: int) -> None:
    """Raise NoClassifierError where timm ignored ``num_classes`` (encoder-only models)."""
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise NoClassifierError(name, num_classes)


def _resolve(name: str) -> tuple[str, Any]:
    """The full name (``arch.tag``, or ``arch`` without weights) and its pretrained cfg."""
    timm = import_timm()
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        raise UnknownModelError(name, suggest(name, _all_names(timm)))
    try:
        cfg = _cfg(name)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        raise UnknownModelError(name, suggest(name, timm.list_pretrained(f"{arch}.*"))) from None
    return (f"{arch}.{cfg.tag}" if _has_weights(f"{arch}.{cfg.tag}") else arch), cfg


def _describe(name: str, cfg: Any, local: LocalWeights) -> ModelInfo:
    """An entry from timm's pretrained cfg and the local weights (no model is built)."""
    found, _ = local.find(name, cfg)
    has_weights = _has_weights(name)
    return ModelInfo(
        name=name, source=SOURCE, framework="pytorch", architecture=cfg.architecture,
        pretrained_tag=cfg.tag if has_weights else None,
        input_size=tuple(cfg.input_size) if cfg.input_size else None,
        mean=tuple(cfg.mean) if cfg.mean else None, std=tuple(cfg.std) if cfg.std else None,
        interpolation=cfg.interpolation, crop_pct=cfg.crop_pct, crop_mode=cfg.crop_mode,
        license=cfg.license, num_classes=cfg.num_classes, paper_ids=cfg.paper_ids,
        paper_name=cfg.paper_name, origin_url=cfg.origin_url,
        hf_hub_id=cfg.hf_hub_id if has_weights else None,
        weights_available=found is not None,
        weights_location=str(found or local.expected(name)),
        description=cfg.description or cfg.notes,
    )


def _weights_file(info: ModelInfo, cfg: Any, pretrained: bool, weights: str | Path | None,
                  local: LocalWeights) -> _Found | None:
    """The file to load, downloaded if need be, or None for random initialisation (asked
    for explicitly)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(info.name, str(path), "no such file (weights=)")
        return _Found(path, False, _provenance.of_path(path, "file"))
    if not pretrained:
        return None
    path, url_copy = local.find(info.name, cfg)
    if path is None:
        path, url_copy = _download(info, cfg, local)
    if url_copy:
        return _Found(path, bool(cfg.custom_load), _provenance.of_path(path, "url", cfg.url))
    if path.parent == local.team_dir:
        return _Found(path, False, _provenance.of_path(path, "team-folder"))
    return _Found(path, False, _provenance.of_hf_cache(path, cfg.hf_hub_id.partition("@")[0]))


def _download(info: ModelInfo, cfg: Any, local: LocalWeights) -> tuple[Path, bool]:
    """Fetch the weights timm's cfg names (the hub file, else its URL); offline, or for an
    architecture without published weights, say what to put where."""
    settings = hub_settings()
    if settings.offline or not info.has_pretrained:
        raise WeightsNotFoundError(info.name, str(info.weights_location),
                                   _hint(info, cfg, settings))
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        return hf_download(info.name, repo, hf_filenames(cfg.hf_hub_filename),
                           revision or None, settings, cache_dir=local.hf_cache), False
    return url_download(info.name, cfg.url, local.torch_hub), True


def _hint(info: ModelInfo, cfg: Any, settings: HubSettings) -> str:
    if not info.has_pretrained:
        return f"timm publishes no pretrained weights for {info.architecture}"
    offline = (f"this machine is offline ({settings.why_offline}): run `cairn zoo pull "
               f"{info.name}` on one with network and copy its weights folder here")
    if info.hf_hub_id:
        file = hf_filenames(cfg.hf_hub_filename)[0]
        return (f"a timm state dict in safetensors, {file} of Hugging Face repository "
                f"{info.hf_hub_id}; {offline} ({WEIGHTS_ENV} or [zoo] weights_dir names it; "
                "a Hugging Face cache holding that repository works too)")
    return (f"a timm state dict in safetensors converted from {cfg.url} (or that file, "
            f"{Path(cfg.url).name}, in torch hub's checkpoints folder); {offline}")


def _load(timm: Any, name: str, cfg: Any, path: Path, custom_load: bool) -> Any:
    """Build with the pretrained head and load ``path`` strictly (timm's own loader)."""
    from safetensors import SafetensorError

    overlay = {"file": str(path), "custom_load": bool(custom_load)}
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except (RuntimeError, OSError, ValueError, KeyError, SafetensorError,
            pickle.UnpicklingError) as exc:
        detail = " ".join(str(exc).split())
        raise WeightsMismatchError(name, str(path), detail[:400]) from exc


def _count_on_meta(name: str) -> int | None:
    """Parameters of the model with its pretrained head, built on the meta device (no
    memory, well under a second); None where an architecture cannot be built there."""
    import torch

    timm = import_timm()
    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
    except Exception:  # an architecture whose init needs real tensors: the count is optional
        return None
    return sum(p.numel() for p in model.parameters())


def _cfg(name: str) -> Any:
    from timm.models import PretrainedCfg, get_pretrained_cfg

    return get_pretrained_cfg(name) or PretrainedCfg(architecture=name.split(".", 1)[0])


def _has_weights(name: str) -> bool:
    from timm.models import is_model_pretrained

    return is_model_pretrained(name)


def _all_names(timm: Any) -> list[str]:
    return [*timm.list_pretrained(), *timm.list_models()]


def _matcher(query: str | None) -> Callable[[str], bool]:
    """Case-insensitive: a glob when ``query`` has ``*?[``, otherwise a substring."""
    if not query:
        return lambda name: True
    q = query.lower()
    if any(c in q for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name.lower(), q)
    return lambda name: q in name.lower()


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]
