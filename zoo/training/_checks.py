"""Value checks of fine-tune options; each failure is a FinetuneConfigError naming the option."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NoReturn

from zoo.errors import FinetuneConfigError

__all__ = ["AUGMENT_OPTIONS", "bad", "check_augment", "finite", "positive_int"]

# The training options of timm's create_transform that ``augment`` may set.
AUGMENT_OPTIONS = ("scale", "ratio", "hflip", "vflip", "color_jitter", "auto_augment",
                   "re_prob", "re_mode", "re_count")


def bad(option: str, value: Any, reason: str) -> NoReturn:
    raise FinetuneConfigError(option, value, reason)


def positive_int(option: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        bad(option, value, "must be a positive integer")


def finite(value: Any, low: float | None = None, high: float | None = None,
           open_low: bool = False) -> bool:
    """Whether ``value`` is a finite number in [low, high] (low excluded if ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if low is not None and (value < low or (open_low and value == low)):
        return False
    return high is None or value <= high


def check_augment(augment: Any) -> None:
    """True, False, or a mapping of known timm transform options with sensible values."""
    if isinstance(augment, bool):
        return
    if not isinstance(augment, Mapping):
        bad("augment", augment, "True (timm's standard), False (none) or a mapping of "
                                f"timm transform options: {', '.join(AUGMENT_OPTIONS)}")
    unknown = sorted(set(augment) - set(AUGMENT_OPTIONS))
    if unknown:
        bad("augment", augment, f"unknown option {unknown[0]!r}; known: "
                                f"{', '.join(AUGMENT_OPTIONS)}")
    for key in ("scale", "ratio"):
        if key in augment and not _range(augment[key], 1.0 if key == "scale" else None):
            bad("augment", augment, f"{key} must be two numbers low <= high"
                                    + (" in (0, 1]" if key == "scale" else ", both > 0"))
    for key in ("hflip", "vflip", "re_prob"):
        if key in augment and not finite(augment[key], 0.0, 1.0):
            bad("augment", augment, f"{key} is a probability in [0, 1]")


def _range(value: Any, high: float | None) -> bool:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    low, top = value
    return finite(low, 0.0, high, True) and finite(top, 0.0, high, True) and low <= top
