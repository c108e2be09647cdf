"""Catalogued models as PyTorch modules: the card's backbone, built by the zoo, with the
card's sha256-verified safetensors weights (never pickle), and its preprocessing.

``build_model`` serves ``zoo.create("catalog:NAME[@VERSION]", num_classes=...)`` (a different
``num_classes`` keeps the backbone and gives a fresh head); :func:`load` returns the model
ready for inference, with the card's preprocessing and labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog._card import ModelCard
from catalog._weights import verified_weights
from catalog.errors import CatalogError, WeightsIntegrityError
from registry.config import Workspace

__all__ = ["LoadedModel", "build_model", "load"]

_BUILDING: set[str] = set()  # cards being built, so a card naming itself as backbone fails


@dataclass
class LoadedModel:
    """A catalogued model in eval mode, with what it needs to classify images."""

    model: Any
    card: ModelCard
    labels: list[str]
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float | None = None

    def preprocess(self, image: Any) -> Any:
        """A PIL image as the normalised (C, H, W) float tensor the model expects: resized
        (shorter side to size / crop_pct, then centre-cropped, as timm evaluates)."""
        import numpy as np
        import torch
        from PIL import Image

        image = image.convert("RGB")
        height, width = self.size
        resample = {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST}.get(
            self.interpolation, Image.BILINEAR)
        if self.crop_pct:
            scale = max(height, width) / self.crop_pct / min(image.size)
            image = image.resize((max(width, round(image.width * scale)),
                                  max(height, round(image.height * scale))), resample)
            left, top = (image.width - width) // 2, (image.height - height) // 2
            image = image.crop((left, top, left + width, top + height))
        else:
            image = image.resize((width, height), resample)
        array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (array - mean) / std

    def predict(self, images: Sequence[Any], top_k: int = 1) -> list[list[tuple[str, float]]]:
        """The ``top_k`` (label, probability) pairs of each image."""
        import torch

        if not images:
            return []
        batch = torch.stack([self.preprocess(img) for img in images])
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            probs = self.model(batch.to(device)).softmax(dim=-1).cpu()
        k = max(1, min(top_k, len(self.labels)))
        values, indices = probs.topk(k, dim=-1)
        return [[(self.labels[i], float(v)) for v, i in zip(row_v, row_i, strict=True)]
                for row_v, row_i in zip(values.tolist(), indices.tolist(), strict=True)]


def load(name_or_ref: str, *, workspace: Workspace | None = None,
         device: str = "cpu") -> LoadedModel:
    """The model of card ``NAME[@VERSION]`` with its documented weights, in eval mode."""
    from catalog._api import get

    card = get(name_or_ref, workspace=workspace)
    model = build_model(card, len(card.labels)).to(device).eval()
    spec = card.input
    size = spec.get("size")
    height, width = (size, size) if isinstance(size, int) else (size[0], size[-1])
    return LoadedModel(model=model, card=card, labels=card.labels, size=(height, width),
                       mean=tuple(spec["mean"]), std=tuple(spec["std"]),
                       interpolation=str(spec.get("interpolation") or "bilinear"),
                       crop_pct=spec.get("crop_pct"))


def build_model(card: ModelCard, num_classes: int, *, pretrained: bool = True,
                weights: str | Path | None = None) -> Any:
    """The card's backbone with its weights (``weights=`` another file, ``pretrained=False``
    none); a ``num_classes`` other than the card's labels gets a fresh classifier."""
    if not card.backbone or not card.labels:
        raise CatalogError(f"model card {card.ref} names no backbone or no input.labels")
    if card.ref in _BUILDING:
        raise CatalogError(f"model card {card.ref} is its own backbone")
    import zoo

    _BUILDING.add(card.ref)
    try:
        model = zoo.create(card.backbone, num_classes=len(card.labels), pretrained=False)
    finally:
        _BUILDING.discard(card.ref)
    if pretrained or weights is not None:
        path = Path(weights) if weights is not None else verified_weights(card)
        _load_state(model, path, card)
    if num_classes != len(card.labels):
        if not hasattr(model, "reset_classifier"):
            raise CatalogError(f"{card.backbone} cannot change its head to {num_classes} "
                               "classes (no reset_classifier)")
        model.reset_classifier(num_classes)
    return model


def _load_state(model: Any, path: Path, card: ModelCard) -> None:
    """Load a safetensors state dict strictly (safetensors cannot run code; pickle can)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:400]
        raise WeightsIntegrityError(card.ref, str(path), f"do not fit {card.backbone} with "
                                                         f"{len(card.labels)} classes: {detail}"
                                    ) from exc
