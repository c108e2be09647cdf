"""Groups of seeds compared: is one configuration better than another beyond seed noise?

    from registry.knowledge.groups import compare_groups
    c = compare_groups("r18-seed1", "r18-mixup-seed1", "val_acc")
    c.verdict    # 'B is better by 1.2 +/- 0.5 points (95%), n=5 vs 5'

Runs that differ only in their seed params (``[runs] seed_params``, default ``seed``; a name
also matches ``train.seed``) form a group: same project, code, data and other params (see
:mod:`registry.store.groups`). A group is named by any run of it (an id, id prefix or name)
or by its id as ``cairn runs groups`` shows it. ``registry.groups(query)`` lists them
(:mod:`registry.query.groups`).

The difference of means (B - A) gets a 95% interval from Welch's t. With fewer than 5 runs on
a side the interval is a seeded percentile bootstrap's, widened to Welch's where Welch's is
wider: at such sizes a bootstrap alone is too narrow. A group needs two runs with the metric
before anything can be said. Only FINISHED runs count unless ``include_unfinished``; runs
left out (by status, without the metric, or with a NaN or infinite last value) are listed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

from registry.config import Workspace, load_workspace
from registry.errors import CairnError, RunNotFoundError
from registry.knowledge._stats import bootstrap_interval, welch_interval
from registry.knowledge.similarity import _MAXIMISE, _MINIMISE, RunSpec
from registry.store import groups as rows

__all__ = ["GroupComparison", "GroupError", "Side", "better_when", "compare_groups",
           "group_key", "keying"]

SMALL = 5  # fewer runs than this on a side: bootstrap (no narrower than Welch)
LEVEL = 0.95
_GROUP_ID = re.compile(r"[0-9a-f]{8,64}")


class GroupError(CairnError, ValueError):
    """A group reference names no group, more than one, or groups that cannot be compared."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref, self.reason = ref, reason
        super().__init__(f"group {ref!r}: {reason}")


@dataclass(frozen=True)
class Side:
    """One group of a comparison: the finite values counted and what was left out."""

    ref: str
    id: str
    key: str
    project: str
    runs: int
    values: tuple[float, ...]
    left_out: Mapping[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return stdev(self.values) if len(self.values) >= 2 else None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "id": self.id, "key": self.key, "project": self.project,
                "runs": self.runs, "n": self.n, "mean": self.mean, "std": self.std,
                "values": list(self.values), "left_out": dict(self.left_out)}


@dataclass(frozen=True)
class GroupComparison:
    """B against A on one metric. ``difference`` is mean(B) - mean(A), ``low``/``high`` its
    95% interval (None when a side has fewer than two values); ``better`` is 'A', 'B' or None
    (no difference beyond seed noise, or no direction known: see ``mode``)."""

    metric: str
    a: Side
    b: Side
    mode: str | None  # 'max' or 'min': which way is better; None when the name does not say
    difference: float | None
    low: float | None
    high: float | None
    method: str | None  # 'welch' or 'bootstrap'
    scale: float  # 100 for a fraction in [0, 1] (shown in percentage points), else 1
    unit: str
    better: str | None
    verdict: str
    notes: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        """Whether the interval leaves out zero."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "a": self.a.to_dict(), "b": self.b.to_dict(),
                "mode": self.mode, "difference": self.difference, "low": self.low,
                "high": self.high, "level": LEVEL, "method": self.method, "scale": self.scale,
                "unit": self.unit, "differs": self.differs, "better": self.better,
                "verdict": self.verdict, "notes": list(self.notes)}


def keying(ws: Workspace) -> rows.Keying:
    """How the workspace makes group keys: its seed params and fingerprint-ignored params."""
    return rows.Keying(tuple(ws.seed_params), tuple(ws.fingerprint_ignore))


def group_key(spec: RunSpec, seed_params: Sequence[str]) -> str:
    """The group key of an experiment (what ``start_run`` stores beside the fingerprint)."""
    return rows.Keying(tuple(seed_params), tuple(spec.ignore)).key(spec.code, spec.params,
                                                                    spec.data)


def better_when(metric: str) -> str | None:
    """'max' or 'min' when the metric's name says which way is better (accuracy, loss...)."""
    if _MAXIMISE.search(metric):
        return "max"
    if _MINIMISE.search(metric):
        return "min"
    return None


def compare_groups(a: str, b: str, metric: str, *, include_unfinished: bool = False,
                   workspace: Workspace | None = None, store: Any = None) -> GroupComparison:
    """Group B against group A on ``metric`` (each named by a run of it or its group id)."""
    ws = workspace or load_workspace()
    store = store or ws.open_store()
    keys = keying(ws)
    extra = rows.rekey(store, keys)
    named = [_resolve(store, keys, ref, extra) for ref in (a, b)]
    if named[0] == named[1]:
        raise GroupError(b, f"names the same group as {a!r}")
    sides = [_side(store, ref, pid, key, metric, include_unfinished, extra)
             for ref, (pid, key) in zip((a, b), named, strict=True)]
    mode = _mode(metric, ws.projects, sides)
    notes = _notes(metric, sides)
    return _compared(metric, sides[0], sides[1], mode, notes)


def _resolve(store: Any, keys: rows.Keying, ref: str, extra: Mapping[int, str]
             ) -> tuple[int, str]:
    """(project id, key): a group id (8 hex characters or more) or a run of the group."""
    text = ref.strip().lower()
    found = rows.find(store, keys, text, extra) if _GROUP_ID.fullmatch(text) else []
    if len(found) > 1:
        raise GroupError(ref, f"matches {len(found)} groups (in projects or ids alike); "
                              "name a run of the one meant, or give more of the id")
    if found:
        return found[0]
    try:
        pid, key = rows.key_of_run(store, store.resolve(ref), extra)
    except RunNotFoundError:
        raise GroupError(ref, "no group id or run matches it") from None
    if key is None:
        raise GroupError(ref, "the run changed while its group was looked up; try again")
    return pid, key


def _side(store: Any, ref: str, pid: int, key: str, metric: str, include_unfinished: bool,
          extra: Mapping[int, str]) -> Side:
    values: list[float] = []
    left: dict[str, int] = {}
    found = rows.members(store, pid, key, metric, extra)
    for m in found:
        why = None
        if not include_unfinished and m.status != "FINISHED":
            why = m.status
        elif not m.has_metric:
            why = f"without {metric}"
        elif m.nonfinite:
            why = f"{m.nonfinite} {metric}"
        if why:
            left[why] = left.get(why, 0) + 1
        else:
            values.append(m.value)
    return Side(ref, key[rows.TAG_LENGTH:rows.TAG_LENGTH + rows.ID_LENGTH], key,
                rows.project_name(store, pid), len(found), tuple(values), left)


def _mode(metric: str, projects: Mapping[str, Any], sides: Sequence[Side]) -> str | None:
    """The project's configured mode when its metric is this one, else the name's."""
    for side in sides:
        config = projects.get(side.project) or {}
        if config.get("metric") == metric and config.get("mode") in ("max", "min"):
            return config["mode"]
    return better_when(metric)


def _notes(metric: str, sides: Sequence[Side]) -> tuple[str, ...]:
    notes = []
    if sides[0].project != sides[1].project:
        notes.append(f"the groups are of different projects ({sides[0].project}, "
                     f"{sides[1].project})")
    for label, side in zip("AB", sides, strict=True):
        if side.left_out:
            what = ", ".join(f"{count} {why}" for why, count in sorted(side.left_out.items()))
            notes.append(f"{label}: left out {what}")
    return tuple(notes)


def _compared(metric: str, a: Side, b: Side, mode: str | None,
              notes: tuple[str, ...]) -> GroupComparison:
    sizes = f"n={a.n} vs {b.n}"
    scale, unit = _units(metric, a.values + b.values)
    if a.n < 2 or b.n < 2:
        few = min(a.n, b.n)
        verdict = (f"cannot tell with n={few}: each group needs at least two runs with "
                   f"{metric} ({sizes})")
        difference = b.mean - a.mean if a.n and b.n else None
        return GroupComparison(metric, a, b, mode, difference, None, None, None, scale, unit,
                               None, verdict, notes)
    low, high, _ = welch_interval(a.values, b.values, LEVEL)
    method = "welch"
    if a.n < SMALL or b.n < SMALL:
        boot = bootstrap_interval(a.values, b.values, LEVEL)
        low, high, method = min(low, boot[0]), max(high, boot[1]), "bootstrap"
    difference = b.mean - a.mean
    differs = low > 0 or high < 0
    better = None
    if differs and mode is not None:
        better = "B" if (difference > 0) == (mode == "max") else "A"
    verdict = _verdict(difference, low, high, better, method, scale, unit, sizes)
    return GroupComparison(metric, a, b, mode, difference, low, high, method, scale, unit,
                           better, verdict, notes)


def _units(metric: str, values: Sequence[float]) -> tuple[float, str]:
    """Percentage points for a fraction (every value in [0, 1]), else the metric's units."""
    if values and all(0.0 <= v <= 1.0 for v in values):
        return 100.0, "points"
    return 1.0, metric


def _verdict(difference: float, low: float, high: float, better: str | None, method: str,
             scale: float, unit: str, sizes: str) -> str:
    if not (low > 0 or high < 0):
        return f"no difference beyond seed noise ({sizes})"
    if better is None:  # no direction known: B is higher or lower
        who, how = "B", "higher" if difference > 0 else "lower"
    else:
        who, how = better, "better"
    # The size of the gap, and its interval, in the gap's direction.
    sign = 1.0 if difference > 0 else -1.0
    gap = abs(difference) * scale
    ends = sorted((sign * low * scale, sign * high * scale))
    if method == "welch":
        half = (ends[1] - ends[0]) / 2
        shown = _num(gap, half)
        return (f"{who} is {how} by {shown} +/- {_num(half, half)} {_unit(unit, shown)} (95%), "
                f"{sizes}")
    width = ends[1] - ends[0]
    shown = _num(gap, width)
    return (f"{who} is {how} by {shown} {_unit(unit, shown)} (95%: {_num(ends[0], width)} to "
            f"{_num(ends[1], width)}), {sizes}")


def _unit(unit: str, shown: str) -> str:
    return "point" if unit == "points" and shown == "1" else unit


def _num(x: float, spread: float) -> str:
    """``x`` to two significant digits of ``spread``."""
    if not spread > 0 or not math.isfinite(spread):
        return f"{x:.4g}"
    decimals = min(8, max(0, 1 - math.floor(math.log10(spread))))
    return f"{x:.{decimals}f}"
