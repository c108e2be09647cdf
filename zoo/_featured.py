"""What ``cairn zoo list`` shows first when no query is given: the team's catalog models,
then the models whose weights are on this machine, then :data:`COMMON` backbones, then the
rest in the order the sources gave."""

from __future__ import annotations

from collections.abc import Iterable

from zoo._info import ModelInfo
from zoo.sources.tfhub import CURATED

__all__ = ["COMMON", "featured_order"]

CATALOG = "catalog"  # the catalog's source name (the zoo never imports the catalog)

# Backbones a team reaches for first on 2D RGB images, small to large within each family,
# each with timm's default (recommended) pretrained tag, then the curated TF Hub set.
# tests/test_zoo_featured.py checks every name against the installed timm.
COMMON: tuple[str, ...] = (
    "resnet18.a1_in1k",
    "resnet34.a1_in1k",
    "resnet50.a1_in1k",
    "resnet101.a1h_in1k",
    "convnext_nano.in12k_ft_in1k",
    "convnext_tiny.in12k_ft_in1k",
    "convnext_small.in12k_ft_in1k",
    "efficientnet_b0.ra_in1k",
    "efficientnet_b1.ra4_e3600_r240_in1k",
    "efficientnet_b2.ra_in1k",
    "efficientnet_b3.ra2_in1k",
    "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "mobilenetv4_conv_small.e2400_r224_in1k",
    "mobilenetv4_conv_medium.e500_r256_in1k",
    *(f"tfhub:{alias}" for alias in CURATED),
)
_RANK = {name: rank for rank, name in enumerate(COMMON)}


def featured_order(entries: Iterable[ModelInfo]) -> list[ModelInfo]:
    """``entries`` with catalog models first, then those whose weights are on this machine,
    then the :data:`COMMON` ones (in its order), then the rest in their given order."""
    return sorted(entries, key=_tier)  # stable: ties keep the sources' order


def _tier(entry: ModelInfo) -> tuple[int, int]:
    if entry.source == CATALOG:
        return 0, 0
    if entry.weights_available:
        return 1, 0
    if entry.name in _RANK:
        return 2, _RANK[entry.name]
    return 3, 0
