"""Altair charts for the pages: MoV over time, runs per week, metric curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd

from dashboard._curves import Curves
from registry.knowledge.comparison import AlignedHistory
from registry.knowledge.mov import MovProgress

__all__ = ["MARK_COLOR", "curves", "history", "mov", "weekly"]

MARK_COLOR = "#d32f2f"  # NaN and infinite points: a dashed rule at their x


def mov(progress: MovProgress) -> alt.LayerChart:
    """Measurements (points), best so far (a step line), baseline and target (rules)."""
    points = pd.DataFrame([{
        "time": _time(m.time), "value": m.value, "who": m.who, "evidence": m.evidence or "",
        "run": (m.run_id or "")[:8]} for m in progress.measurements])
    best = pd.DataFrame([{"time": _time(t), "best": v} for t, v in progress.history])
    rules = pd.DataFrame([{"what": "baseline", "value": progress.baseline},
                          {"what": "target", "value": progress.target}])
    y = alt.Y("value:Q", title=progress.unit, scale=alt.Scale(zero=False))
    layers = [
        alt.Chart(rules).mark_rule(strokeDash=[4, 4]).encode(
            y=y, color=alt.Color("what:N", title=None,
                                 scale=alt.Scale(range=["#888888", "#2e7d32"])),
            tooltip=["what", "value"]),
    ]
    if not points.empty:
        layers.append(alt.Chart(best).mark_line(interpolate="step-after").encode(
            x=alt.X("time:T", title=None), y=alt.Y("best:Q")))
        layers.append(alt.Chart(points).mark_circle(size=60).encode(
            x="time:T", y=y, tooltip=["time:T", "value", "who", "evidence", "run"]))
    return alt.layer(*layers).properties(height=220)


def weekly(rows: Sequence[Mapping[str, Any]]) -> alt.Chart:
    """Runs per week, stacked by owner."""
    frame = pd.DataFrame([{**r, "week": _time(r["week"])} for r in rows])
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("week:T", title="week", timeUnit="yearmonthdate"),
        y=alt.Y("sum(runs):Q", title="runs"), color=alt.Color("owner:N"),
        tooltip=["week:T", "owner", "runs"]).properties(height=220)


def curves(key: str, history: AlignedHistory, names: Sequence[str]) -> alt.Chart:
    """One metric of several runs on a common step axis."""
    frame = pd.DataFrame([
        {"step": step, "value": value, "run": name}
        for name, values in zip(names, history.values, strict=True)
        for step, value in zip(history.steps, values, strict=True)
        if value is not None and math.isfinite(value)])
    return alt.Chart(frame, title=key).mark_line().encode(
        x="step:Q", y=alt.Y("value:Q", title=key, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title=None), tooltip=["run", "step", "value"],
    ).properties(height=240)


def history(curves: Curves, axis: str, title: str | None = None,
            height: int = 300) -> alt.LayerChart:
    """One run's metrics on one chart (a line each), NaN and infinite points as dashed rules
    at their x; ``axis``: 'step' or 'time' (wall-clock)."""
    x = (alt.X("x:Q", title="step") if axis == "step"
         else alt.X("x:T", title="wall time (UTC)"))
    points, marks = _on_axis(curves.points, axis), _on_axis(curves.marks, axis)
    layers = [alt.Chart(points).mark_line(clip=True).encode(
        x=x, y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("metric:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["metric", alt.Tooltip("x", title=axis), alt.Tooltip("value", format=".6g")])]
    if not marks.empty:
        layers.append(alt.Chart(marks).mark_rule(color=MARK_COLOR, strokeDash=[3, 3]).encode(
            x=x, tooltip=["metric", "kind", alt.Tooltip("x", title=axis)]))
    chart = alt.layer(*layers).properties(height=height)
    return chart.properties(title=title) if title else chart


def _on_axis(frame: pd.DataFrame, axis: str) -> pd.DataFrame:
    if axis == "step" or frame.empty:
        return frame
    return frame.assign(x=pd.to_datetime(frame["x"], unit="s"))  # UTC, without a timezone


def _time(timestamp: float) -> str:
    # An ISO 8601 text with its offset: Vega-Lite reads it as that instant, and pandas never
    # holds a timezone-aware column (Altair reads those through the deprecated Series.values).
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
