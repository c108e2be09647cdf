"""Metric histories made small enough to draw: plain numpy, no store, no Streamlit.

A history of 100,000 points is drawn from at most about ``2 * buckets`` of them: the points
are split in ``buckets`` runs of equal length (in step or time order) and each keeps its
lowest and highest finite value, so spikes survive, as does the last point. NaN and infinite
values have no place on a value axis: they are kept apart, as marks at their x (thinned to
one per bucket too), never dropped without a trace. Only drawing is thinned; the numbers a
page shows (last, min, max, counts) are the store's summaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["AXES", "BUCKETS", "CHART_POINTS", "Curves", "buckets_for", "downsample", "thin"]

BUCKETS = 1000  # per metric: up to about 2,000 points drawn
CHART_POINTS = 2000  # what a page draws at most, all its curves together (about)
AXES = ("step", "time")  # time: wall-clock seconds since the epoch


@dataclass(frozen=True)
class Curves:
    """What a chart draws: ``points`` (metric, x, value) and ``marks`` (metric, x, kind:
    'NaN', '+inf' or '-inf'); ``points_in`` and ``nonfinite_in``: how many each metric had."""

    points: pd.DataFrame
    marks: pd.DataFrame
    points_in: Mapping[str, int]
    nonfinite_in: Mapping[str, int]

    def only(self, key: str) -> Curves:
        """The curve of one metric."""
        return Curves(self.points[self.points["metric"] == key],
                      self.marks[self.marks["metric"] == key],
                      {key: self.points_in.get(key, 0)}, {key: self.nonfinite_in.get(key, 0)})


def buckets_for(curves: int, budget: int = CHART_POINTS) -> int:
    """Buckets per metric so that ``curves`` metrics draw about ``budget`` points together
    (two per bucket), and never fewer than 100 each. The browser's time to draw a chart grows
    with its points (about 0.1 s per 1,000 on a 2-core machine), not with the history."""
    return max(100, budget // (2 * max(curves, 1)))


def thin(x: np.ndarray, values: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """Indices (into ``x``, sorted by x) of the finite points to draw: per bucket of equal
    length, the lowest and the highest value, plus the last finite point."""
    order = np.argsort(x, kind="stable")
    finite = order[np.isfinite(values[order])]
    n = len(finite)
    if n <= 2 * buckets:
        return finite
    size = -(-n // buckets)
    grid = np.full(size * buckets, np.inf)
    grid[:n] = values[finite]
    offsets = np.arange(buckets) * size
    low = np.argmin(grid.reshape(buckets, size), axis=1) + offsets
    grid[n:] = -np.inf  # the padding of the last bucket never wins
    high = np.argmax(grid.reshape(buckets, size), axis=1) + offsets
    kept = np.unique(np.concatenate([low, high, [n - 1]]))
    return finite[kept[kept < n]]


def _marks(key: str, x: np.ndarray, values: np.ndarray, buckets: int) -> pd.DataFrame:
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad) > buckets:  # one mark per bucket of them: enough to see where they are
        bad = bad[np.linspace(0, len(bad) - 1, buckets).astype(int)]
    kinds = np.where(np.isnan(values[bad]), "NaN", np.where(values[bad] > 0, "+inf", "-inf"))
    return pd.DataFrame({"metric": key, "x": x[bad], "kind": kinds})


def downsample(histories: Mapping[str, Sequence[Sequence[float]]], axis: str = "step",
               buckets: int = BUCKETS) -> Curves:
    """``histories``: metric -> (steps, values, times) as the store returns them."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    points, marks, counts, nonfinite = [], [], {}, {}
    for key, (steps, values, times) in histories.items():
        x = np.asarray(steps if axis == "step" else times, dtype=float)
        v = np.asarray(values, dtype=float)
        kept = thin(x, v, buckets)
        points.append(pd.DataFrame({"metric": key, "x": x[kept], "value": v[kept]}))
        marks.append(_marks(key, x, v, buckets))
        counts[key], nonfinite[key] = len(v), int(np.count_nonzero(~np.isfinite(v)))
    return Curves(_frame(points, ("metric", "x", "value")), _frame(marks, ("metric", "x", "kind")),
                  counts, nonfinite)


def _frame(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    frames = [p for p in parts if not p.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
