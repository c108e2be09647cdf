"""Has this been tried? Exact duplicates, similar experiments, and the best run to start from.

Similarity starts from runs on the same data or of the same model family (both indexed),
then ranks them: same data 0.4, same family 0.3, params 0.3 (each param compared by value;
numbers by ratio, so 1e-3 and 2e-3 are close and 1e-3 and 1e-1 are not). An exact
fingerprint match scores 1.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from registry._fingerprint import (
    data_key,
    fingerprint,
    model_family,
    normalise_params,
    param_similarity,
)
from registry._params import ParamValue, typed_value
from registry.config import Workspace, load_workspace
from registry.entities import MetricSummary, RunRecord

if TYPE_CHECKING:
    from registry.store.groups import Group

__all__ = ["Prior", "RunSpec", "best_prior", "primary_metric", "similar", "spec_of"]

SIMILAR_ENOUGH = 0.8  # scores at or above this are reported at run start
DATA_WEIGHT, FAMILY_WEIGHT, PARAMS_WEIGHT = 0.4, 0.3, 0.3
_MAXIMISE = re.compile(r"acc|f1|map|auc|precision|recall|iou|dice|score|r2", re.I)
_MINIMISE = re.compile(r"loss|err|mae|mse|rmse|wer|cer|ppl|perplexity", re.I)


@dataclass(frozen=True)
class RunSpec:
    """What defines an experiment, whether recorded yet or not."""

    params: Mapping[str, ParamValue]
    data: tuple[tuple[str, str | None, str], ...] = ()  # (role, hash, path)
    code: Mapping[str, Any] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.code, self.params, self.data, self.ignore)

    @cached_property
    def family(self) -> str | None:
        return model_family({k: p.value() for k, p in self.params.items() if p.vtype == "str"})

    @cached_property
    def data_key(self) -> str | None:
        return data_key(h for _, h, _ in self.data)

    @cached_property
    def compared(self) -> dict[str, ParamValue]:
        """The params that count when comparing runs (``ignore`` left out)."""
        return {k: p for k, p in self.params.items() if k not in self.ignore}


@dataclass(frozen=True)
class Prior:
    """An earlier run related to the one at hand (``run`` carries metric summaries; the
    differing params are in ``differences``; ``registry.get_run`` has the rest)."""

    run: RunRecord
    score: float
    exact: bool
    reasons: tuple[str, ...]
    differences: Mapping[str, tuple[Any, Any]]
    group: Group | None = None  # the run's group of seeds (registry.store.groups), if keyed
    origin: str | None = None  # the node it was synced from (``cairn sync``), if it was

    def describe(self, metric: tuple[str, str] | None = None) -> str:
        """One line naming who ran it, when, its status and its best metric."""
        r = self.run
        kind = "the same experiment" if self.exact else f"a similar experiment ({self.score:.2f})"
        when = r.started.strftime("%Y-%m-%d %H:%M")
        result = _metric_text(r, metric)
        diff = "" if self.exact or not self.differences else " — differs in " + ", ".join(
            f"{k}: {_show(a)} vs {_show(b)}" for k, (a, b) in list(self.differences.items())[:4])
        where = f" (synced from {self.origin})" if self.origin else ""
        return (f"{kind} was run by {r.owner} on {when}: run {r.id[:8]} {r.name or ''} "
                f"[{r.status}]{where}{result}{diff}").replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run.id, "name": self.run.name, "owner": self.run.owner,
                "score": self.score, "exact": self.exact, "reasons": list(self.reasons),
                "differences": {k: list(v) for k, v in self.differences.items()},
                "origin": self.origin}


def spec_of(record: RunRecord, ignore: Iterable[str] = ()) -> RunSpec:
    """The experiment a recorded run stands for."""
    params = {k: typed_value(k, v)[0] for k, v in record.params.items()}
    data = tuple((d.role, d.hash, d.path) for d in record.datasets if d.tracked or d.hash)
    code = {**record.code, "entry_point": _entry(record.entry_point)}
    spec = RunSpec(params, data, code, tuple(ignore))
    if record.fingerprint:
        # The fingerprint as the run computed it: it counted untracked data by path too.
        spec.__dict__["fingerprint"] = record.fingerprint
    return spec


def similar(run_or_spec: str | RunSpec, *, limit: int = 10, min_score: float = 0.5,
            workspace: Workspace | None = None) -> list[Prior]:
    """Earlier runs like this one (a run reference or a spec), best match first."""
    ws = workspace or load_workspace()
    store = ws.open_store()
    exclude = None
    if isinstance(run_or_spec, str):
        exclude = store.resolve(run_or_spec)
        run_or_spec = spec_of(store.get_run(exclude), _ignored(ws))
    return find_priors(store, run_or_spec, exclude=exclude, limit=limit, min_score=min_score)


def find_priors(store, spec: RunSpec, *, exclude: int | None = None, limit: int = 10,
                min_score: float = 0.5) -> list[Prior]:
    """Score candidate runs against ``spec``; used by ``similar`` and at run start.

    Candidates are taken in tiers of their coarse score (data and family): params, which can
    add at most ``PARAMS_WEIGHT``, are read and compared only for tiers that can still make
    the list, so the cost stays flat however many runs share the data.
    """
    from registry.store import similar as rows
    from registry.store.groups import groups_of
    from registry.store.sync import origins

    with store.snapshot():  # one read transaction for the pool, its params and records
        found = rows.pool(store, fingerprint=spec.fingerprint, data_key=spec.data_key,
                          family=spec.family, exclude=exclude)
        scored, params = _score(store, spec, found, limit, min_score)
        records = store.get_runs([pk for _, pk, _ in scored], details=False)
        groups = groups_of(store, [pk for _, pk, _ in scored]) if scored else {}
        synced = origins(store, [pk for _, pk, _ in scored])
    exact = set(found.exact)
    return [Prior(record, round(score, 3), pk in exact, tuple(reasons),
                  {} if pk in exact else _differences(spec, params.get(pk, {})), groups.get(pk),
                  synced.get(pk))
            for (score, pk, reasons), record in zip(scored, records, strict=True)]


def _score(store, spec: RunSpec, found: Any, limit: int, min_score: float
           ) -> tuple[list[tuple[float, int, list[str]]], dict[int, dict[str, ParamValue]]]:
    """The best ``limit`` candidates scoring at least ``min_score``, best first, and the params
    read on the way (tier by tier, stopping at the first tier that cannot make the list)."""
    from registry.store import similar as rows

    exact = set(found.exact)
    scored = [(1.0, pk, ["same code, params and data"]) for pk in sorted(exact)]
    params: dict[int, dict[str, ParamValue]] = {}
    for tier, pks in _tiers(spec, [pk for pk in found.candidates if pk not in exact],
                            found.keys):
        floor = sorted(s for s, _, _ in scored)[-limit] if len(scored) >= limit else 0.0
        if tier + PARAMS_WEIGHT < max(min_score, floor):
            break
        params.update(rows.params_of(store, pks))
        for pk in pks:
            closeness, reasons = _closeness(spec, params.get(pk, {}))
            score = tier + PARAMS_WEIGHT * closeness
            if score >= min_score:
                scored.append((score, pk, _coarse(spec, found.keys[pk])[1] + reasons))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    return scored[:limit], params


def _tiers(spec: RunSpec, pks: list[int], keys: Mapping[int, tuple[str | None, str | None]]):
    """Candidates grouped by coarse score, best tier first."""
    by_tier: dict[float, list[int]] = {}
    for pk in pks:
        by_tier.setdefault(_coarse(spec, keys[pk])[0], []).append(pk)
    return sorted(by_tier.items(), reverse=True)


def _coarse(spec: RunSpec, keys: tuple[str | None, str | None]) -> tuple[float, list[str]]:
    their_data, their_family = keys
    score, reasons = 0.0, []
    if spec.data_key and their_data == spec.data_key:
        score += DATA_WEIGHT
        reasons.append("same data")
    if spec.family and their_family == spec.family:
        score += FAMILY_WEIGHT
        reasons.append(f"same model family ({their_family})")
    return score, reasons


def _closeness(spec: RunSpec, theirs: Mapping[str, ParamValue]) -> tuple[float, list[str]]:
    mine = spec.compared
    names = mine.keys() | {k for k in theirs if k not in spec.ignore}
    # Most params of a similar run are equal: count those at C speed, score only the rest.
    same = mine.items() & theirs.items()
    rest = sum(param_similarity(p, theirs.get(k)) for k, p in mine.items() if (k, p) not in same)
    closeness = (len(same) + rest) / len(names) if names else 1.0
    return closeness, [f"params {closeness:.0%} alike"]


def _differences(spec: RunSpec, theirs: Mapping[str, ParamValue]) -> dict[str, tuple[Any, Any]]:
    mine, other = normalise_params(spec.params, spec.ignore), normalise_params(theirs, spec.ignore)
    return {k: (_value(spec.params.get(k)), _value(theirs.get(k)))
            for k in sorted(set(mine) | set(other)) if mine.get(k) != other.get(k)}


def best_prior(data: str | os.PathLike, metric: str, *, mode: str | None = None,
               project: str | None = None, workspace: Workspace | None = None) -> RunRecord | None:
    """The best finished run on this data (a DVC-tracked path or a hash prefix) by ``metric``
    (maximised unless its name says loss/error, or ``mode="min"``): the case to start from."""
    from registry.store import similar as rows

    ws = workspace or load_workspace()
    mode = mode or ("min" if _MINIMISE.search(metric) else "max")
    if mode not in ("min", "max"):
        raise ValueError("mode must be 'min' or 'max'")
    store = ws.open_store()
    pks = rows.best_on_data(store, _data_hash(data, ws), metric, mode, project_name=project)
    return store.get_run(pks[0]) if pks else None


def primary_metric(record: RunRecord, projects: Mapping[str, Mapping[str, Any]] | None = None
                   ) -> tuple[str, str] | None:
    """(metric, 'max'|'min') that says how good a run is: the project's configured
    ``metric``/``mode``, else the first metric whose name reads like accuracy or loss."""
    config = (projects or {}).get(record.project, {})
    if config.get("metric"):
        name = str(config["metric"])
        return name, str(config.get("mode") or ("min" if _MINIMISE.search(name) else "max"))
    for pattern, mode in ((_MAXIMISE, "max"), (_MINIMISE, "min")):
        for key in sorted(record.metrics, key=lambda k: (not k.startswith("val"), k)):
            if pattern.search(key):
                return key, mode
    return None


def _metric_text(r: RunRecord, metric: tuple[str, str] | None) -> str:
    metric = metric or primary_metric(r)
    summary: MetricSummary | None = r.metrics.get(metric[0]) if metric else None
    if summary is None:
        return ""
    best = summary.max if metric[1] == "max" else summary.min
    return f", best {metric[0]}={best:.4g}" if best is not None else ""


def _data_hash(data: str | os.PathLike, ws: Workspace) -> str:
    text = os.fspath(data)
    if os.path.exists(text):
        from registry.capture.dvc import capture_data

        version, warnings = capture_data(text, state_dir=ws.state_dir)
        if not version.hash:
            raise ValueError(f"{text} has no DVC version: {'; '.join(warnings)}")
        return version.hash
    if not re.fullmatch(r"[0-9a-f]{4,64}(\.dir)?", text):
        raise ValueError(f"{text!r} is neither an existing path nor a DVC hash prefix")
    return text


def _ignored(ws: Workspace) -> tuple[str, ...]:
    return ws.fingerprint_ignore


def _entry(entry_point: str | None) -> str | None:
    return os.path.basename(entry_point) if entry_point else None


def _value(p: ParamValue | None) -> Any:
    return None if p is None else p.value()


def _show(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def describe_all(priors: Sequence[Prior], projects: Mapping[str, Any] | None = None) -> list[str]:
    """Warning lines for run start: one per prior, then one per group of seeds among them
    ("bob ran this 3 times: val_acc 0.912 +/- 0.004")."""
    lines = [p.describe(primary_metric(p.run, projects)) for p in priors]
    shown: dict[tuple[str, str], list[Prior]] = {}
    for p in priors:
        if p.group is not None and p.group.runs >= 2:
            shown.setdefault((p.group.project, p.group.key), []).append(p)
    return lines + [_group_line(ps, projects) for ps in list(shown.values())[:2]]


def _group_line(priors: Sequence[Prior], projects: Mapping[str, Any] | None) -> str:
    group, first = priors[0].group, priors[0]
    exact = any(p.exact for p in priors)
    what = "this" if exact else f"a similar experiment (run {first.run.id[:8]})"
    owners = list(group.owners)
    who = " and ".join(owners) if len(owners) <= 2 else (
        f"{owners[0]}, {owners[1]} and {len(owners) - 2} more")
    line = f"{who} ran {what} {group.runs} times (group {group.id})"
    metric = primary_metric(first.run, projects)
    stats = group.metrics.get(metric[0]) if metric else None
    if stats is not None and stats.n:
        spread = stats.std or 0.0
        places = max(0, -math.floor(math.log10(spread))) if spread > 0 else None
        mean = f"{stats.mean:.4g}" if places is None else f"{stats.mean:.{places}f}"
        line += f": {metric[0]} {mean}"
        if places is not None:
            line += f" +/- {spread:.{places}f}"
        line += f" (n={stats.n}" + "".join(
            f", {count} {status}" for status, count in group.left_out.items()) + ")"
    return line
