"""MoV records (plain dataclasses), their validation and the progress arithmetic, free of
any store."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from registry.errors import MovError
from registry.text import to_utf8

__all__ = [
    "DIRECTIONS",
    "MovDefinition",
    "MovMeasurement",
    "MovProgress",
    "as_name",
    "as_number",
    "as_text",
    "as_time",
    "best_of",
    "make_definition",
    "percent_to_target",
    "progress_of",
]

DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class MovDefinition:
    """What a project promises its stakeholders: a unit, a direction, a baseline and a target."""

    project: str
    name: str
    unit: str
    direction: str
    baseline: float
    target: float
    stakeholder: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MovMeasurement:
    """One measured value with its provenance: who, when, on what evidence, from which run."""

    project: str
    name: str
    value: float
    unit: str
    who: str
    time: float
    evidence: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MovProgress:
    """A definition with its measurements in time order and how far they got.

    ``history`` holds ``(time, best so far)`` after each measurement, for charts;
    ``percent_to_target`` is 0 at the baseline and 100 at the target (beyond either is fine).
    """

    project: str
    name: str
    unit: str
    direction: str
    baseline: float
    target: float
    stakeholder: str | None = None
    description: str | None = None
    measurements: list[MovMeasurement] = field(default_factory=list)
    count: int = 0
    best: float | None = None
    best_time: float | None = None
    latest: float | None = None
    latest_time: float | None = None
    percent_to_target: float | None = None
    history: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [list(point) for point in self.history]
        return data


def percent_to_target(best: float, baseline: float, target: float) -> float | None:
    """How much of the way from baseline to target ``best`` is, in percent."""
    if target == baseline:
        return None
    return (best - baseline) / (target - baseline) * 100.0


def best_of(direction: str, a: float, b: float) -> float:
    """The better of two values for a direction ('higher' or 'lower')."""
    return max(a, b) if direction == "higher" else min(a, b)


def progress_of(definition: MovDefinition,
                measurements: Sequence[MovMeasurement]) -> MovProgress:
    """Progress of a definition given its measurements (sorted here by time)."""
    ordered = sorted(measurements, key=lambda m: m.time)
    history: list[tuple[float, float]] = []
    best: float | None = None
    best_time: float | None = None
    for m in ordered:
        if best is None or best_of(definition.direction, best, m.value) != best:
            best, best_time = m.value, m.time
        history.append((m.time, best))
    last = ordered[-1] if ordered else None
    percent = None if best is None else percent_to_target(best, definition.baseline,
                                                          definition.target)
    return MovProgress(
        **definition.to_dict(), measurements=ordered, count=len(ordered), best=best,
        best_time=best_time, latest=last.value if last else None,
        latest_time=last.time if last else None, percent_to_target=percent, history=history,
    )


# -- validation -------------------------------------------------------------------------------


def make_definition(project: str, name: str, *, unit: str, direction: str, baseline: float,
                    target: float, stakeholder: str | None = None,
                    description: str | None = None) -> MovDefinition:
    """A validated definition: the target must lie beyond the baseline in the better direction."""
    label = str(name)
    if direction not in DIRECTIONS:
        raise MovError(label, f"direction must be 'higher' or 'lower' (which way is better), "
                              f"not {direction!r}")
    base, goal = as_number(label, "baseline", baseline), as_number(label, "target", target)
    if base == goal:
        raise MovError(label, f"target equals the baseline ({base:g}): there is no way to go")
    if (goal > base) != (direction == "higher"):
        side = "above" if direction == "higher" else "below"
        raise MovError(label, f"target {goal:g} must be {side} the baseline {base:g} "
                              f"when {direction} is better")
    if not math.isfinite(goal - base):
        raise MovError(label, "baseline and target are too far apart to compare")
    return MovDefinition(
        project=as_name(label, "project", project), name=as_name(label, "name", name),
        unit=as_name(label, "unit", unit, limit=50), direction=direction, baseline=base,
        target=goal, stakeholder=as_text(label, "stakeholder", stakeholder, limit=200),
        description=as_text(label, "description", description),
    )


def as_number(name: str, what: str, value: Any) -> float:
    """A finite float; bools and text are refused rather than coerced."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise MovError(name, f"{what} must be a number, not a bool ({value!r})")
    if isinstance(value, (str, bytes)):
        raise MovError(name, f"{what} must be a number, not text ({value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MovError(name, f"{what} must be a number, not {type(value).__name__}") from None
    if not math.isfinite(number):
        raise MovError(name, f"{what} must be a finite number, not {number}")
    return number


def as_name(label: str, what: str, value: Any, limit: int = 200) -> str:
    text = as_text(label, what, value, limit)
    if text is None or not text.isprintable():
        raise MovError(label, f"{what} must be printable, non-empty text")
    return text


def as_text(label: str, what: str, value: Any, limit: int | None = None) -> str | None:
    """Stripped UTF-8 text, or None when empty."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise MovError(label, f"{what} must be text, not {type(value).__name__}")
    text = to_utf8(value)[0].strip()
    if limit is not None and len(text) > limit:
        raise MovError(label, f"{what} is longer than {limit} characters")
    return text or None


def as_time(name: str, when: float | datetime | None) -> float:
    if when is None:
        return time.time()
    return when.timestamp() if isinstance(when, datetime) else as_number(name, "when", when)
