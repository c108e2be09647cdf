"""The team's own catalog as a zoo source: ``catalog:NAME[@VERSION]``.

The zoo finds this source through the ``cairn.zoo_sources`` entry point ``catalog`` and
loads it only when a ``catalog:`` name is used or every source is listed, so the zoo never
imports the catalog. Each model card of the workspace's catalog directory is one model.
Creating one builds the card's backbone through the zoo and loads the card's safetensors
weights after checking their sha256; a ``num_classes`` other than the card's labels keeps the
backbone and resets the head. A card's framework is its backbone's.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import zoo
from catalog._api import get, list_cards, summarise
from catalog._card import ModelCard
from catalog._files import split_ref
from catalog._inference import profile_target, write_inference
from catalog._load import build_model
from catalog._weights import read_header
from catalog.errors import (
    CardNotFoundError,
    CatalogError,
    WeightsIntegrityError,
    WeightsMissingError,
)
from zoo.errors import UnknownModelError, WeightsMismatchError, WeightsNotFoundError, ZooError
from zoo.sources import Framework, suggest

__all__ = ["CatalogSource"]

SOURCE = "catalog"
_ASKING: set[str] = set()  # cards whose framework is being found (a card naming itself)


class CatalogSource:
    """Model cards of the workspace catalog."""

    def list(self, query: str | None = None) -> Iterator[zoo.ModelInfo]:
        """Every card (each version) whose ``name@version`` matches ``query``."""
        for card in sorted(list_cards(), key=lambda c: (c.name, c.version)):
            if card.name and card.version and _matches(card.ref, query):
                yield _describe(card)

    def info(self, name: str) -> zoo.ModelInfo:
        """One card's entry; the parameter count comes from the weights file's header."""
        card = _card(name)
        info = _describe(card)
        if info.weights_available:
            try:
                count = read_header(Path(str(info.weights_location)), card.ref).num_params
            except CatalogError:
                count = None
            info = replace(info, num_params=count)
        return info

    def create(self, name: str, num_classes: int, pretrained: bool = True,
               weights: str | Path | None = None) -> Any:
        """The card's model; ``num_classes`` other than the card's labels: a fresh head."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        card = _card(name)
        if weights is not None and not Path(weights).is_file():
            raise WeightsNotFoundError(f"{SOURCE}:{card.ref}", str(weights), "no such file")
        try:
            model = build_model(card, num_classes, pretrained=pretrained, weights=weights)
        except WeightsMissingError as exc:
            raise WeightsNotFoundError(f"{SOURCE}:{card.ref}", exc.path, exc.hint) from exc
        except WeightsIntegrityError as exc:
            raise WeightsMismatchError(f"{SOURCE}:{card.ref}", exc.path, exc.reason) from exc
        info = replace(_describe(card), provenance=_provenance(card, pretrained, weights))
        model.cairn_info = replace(info, num_params=sum(p.numel() for p in model.parameters()))
        return model

    def framework(self, name: str) -> Framework:
        """The framework of the card's backbone."""
        return _framework(_card(name))

    # -- for `cairn zoo profile` ------------------------------------------------------------
    def profile_target(self, name: str) -> dict[str, Any]:
        """What the zoo's profiler needs of card ``name``: ref, labels, input, runs, digest."""
        return profile_target(_card(name))

    def record_inference(self, name: str, entries: list[dict[str, Any]]) -> Path:
        """Write inference profiles into card ``name``'s ``inference:`` list."""
        return write_inference(_card(name), entries)


def _provenance(card: ModelCard, pretrained: bool,
                weights: str | Path | None) -> zoo.WeightsProvenance | None:
    """The card's weights (checked against its sha256 as they loaded), or ``weights=``."""
    path = Path(weights) if weights is not None else card.weights_path
    if not pretrained or path is None:
        return None
    if weights is not None:
        return zoo.WeightsProvenance.of_file(path)
    return zoo.WeightsProvenance(source=SOURCE, sha256=str(card.weights.get("sha256", "")),
                                 size=path.stat().st_size, file=path.name,
                                 repo_id=f"{SOURCE}:{card.name}", revision=card.version,
                                 location=str(path))


def _card(name: str) -> ModelCard:
    try:
        base, version = split_ref(name)
        return get(base, version)
    except CardNotFoundError as exc:
        refs = [f"{SOURCE}:{c.ref}" for c in list_cards()]
        raise UnknownModelError(f"{SOURCE}:{name}", suggest(f"{SOURCE}:{name}", refs)) from exc
    except CatalogError as exc:
        raise UnknownModelError(f"{SOURCE}:{name}") from exc


def _framework(card: ModelCard) -> Framework:
    """The backbone's framework; PyTorch where the backbone cannot say (creating the card
    then fails with the backbone's own error)."""
    if not card.backbone or card.ref in _ASKING:
        return "pytorch"
    _ASKING.add(card.ref)
    try:
        return zoo.framework_of(str(card.backbone))
    except ZooError:
        return "pytorch"
    finally:
        _ASKING.discard(card.ref)


def _describe(card: ModelCard) -> zoo.ModelInfo:
    spec = card.input
    size = spec.get("size")
    hw = (size, size) if isinstance(size, int) else tuple(size or ())[-2:] or None
    path = card.weights_path
    license_ = card.front_matter.get("license")
    return zoo.ModelInfo(
        name=f"{SOURCE}:{card.ref}", source=SOURCE, framework=_framework(card),
        architecture=str(card.backbone or ""), pretrained_tag=card.version,
        input_size=(3, *hw) if hw and len(hw) == 2 else None,
        mean=_floats(spec.get("mean")), std=_floats(spec.get("std")),
        interpolation=spec.get("interpolation"), crop_pct=spec.get("crop_pct"),
        license=license_ if isinstance(license_, str) else None, num_classes=len(card.labels),
        origin_url=str(card.path) if card.path else None,
        weights_available=bool(path and path.is_file()),
        weights_location=str(path) if path else None,
        description=summarise(card).summary or None,
    )


def _floats(values: Any) -> tuple[float, ...] | None:
    if not isinstance(values, list):
        return None
    return tuple(float(v) for v in values if isinstance(v, (int, float)))


def _matches(ref: str, query: str | None) -> bool:
    if not query:
        return True
    q = query.lower().removeprefix(f"{SOURCE}:")
    if any(c in q for c in "*?["):
        return fnmatch.fnmatchcase(ref.lower(), q)
    return q in ref.lower()
