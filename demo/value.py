"""What a model is worth on the line: an evaluation turned into a project's MoV.

The figures that turn a model's errors into the stakeholders' unit (defect rate, welds per
shift, minutes per reinspection) come from ``params.yaml`` (section ``value``), per project:

- ``escaped_defects`` (defective parts per 10,000 that reach the customer): parts x defect
  rate x the share of defective images the model lets through as ``negative_class``;
- ``reinspection_minutes`` (per shift): welds per shift x error rate x minutes per weld.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from demo.errors import DemoSetupError

__all__ = ["MEASURES", "Measure", "measure"]

PARTS = 10_000


@dataclass(frozen=True)
class Measure:
    """A MoV value computed from an evaluation, and how (for the evidence)."""

    name: str
    value: float
    how: str
    metrics: dict[str, float]


def escaped_defects(evaluation: Any, settings: dict[str, Any]) -> Measure:
    """Defective parts per 10,000 the model passes as good."""
    negative = str(settings["negative_class"])
    rate = float(settings["defect_rate"])
    recall = defect_recall(evaluation, negative)
    value = PARTS * rate * (1.0 - recall)
    how = (f"defect recall {recall:.3f} on {evaluation.n} held-out images x defect rate "
           f"{rate:g} x {PARTS:,} parts")
    return Measure("escaped_defects", value, how, {"defect_recall": recall})


def reinspection_minutes(evaluation: Any, settings: dict[str, Any]) -> Measure:
    """Minutes per shift spent reinspecting welds the model got wrong."""
    welds = float(settings["welds_per_shift"])
    minutes = float(settings["minutes_per_weld"])
    errors = 1.0 - float(evaluation.accuracy)
    value = welds * errors * minutes
    how = (f"error rate {errors:.3f} on {evaluation.n} held-out images x {welds:g} welds "
           f"per shift x {minutes:g} min")
    return Measure("reinspection_minutes", value, how, {"error_rate": errors})


MEASURES: dict[str, Callable[[Any, dict[str, Any]], Measure]] = {
    "escaped_defects": escaped_defects,
    "reinspection_minutes": reinspection_minutes,
}


def measure(project: str, evaluation: Any, value_params: dict[str, Any]) -> Measure:
    """The MoV of ``project`` for ``evaluation``, as params.yaml's ``value`` section says."""
    settings = value_params.get(project)
    kind = settings.get("mov") if isinstance(settings, dict) else None
    if kind not in MEASURES:
        raise DemoSetupError(f"params.yaml value.{project}.mov is {kind!r}",
                             f"choose one of {', '.join(MEASURES)}")
    try:
        return MEASURES[kind](evaluation, settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise DemoSetupError(f"params.yaml value.{project} is incomplete or wrong ({exc})",
                             "see the repository's params.yaml") from exc


def defect_recall(evaluation: Any, negative: str) -> float:
    """Share of defective images (every class but ``negative``) not predicted ``negative``."""
    names = list(evaluation.class_names)
    if negative not in names:
        raise DemoSetupError(f"class {negative!r} is not among {names}",
                             "set value.<project>.negative_class in params.yaml")
    neg = names.index(negative)
    rows = [row for i, row in enumerate(evaluation.confusion) if i != neg]
    defective = sum(sum(row) for row in rows)
    passed = sum(row[neg] for row in rows)
    return (defective - passed) / defective if defective else 0.0
