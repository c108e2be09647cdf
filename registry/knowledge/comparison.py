"""Compare runs side by side: params, metrics, aligned histories, code, data and machine.

    from registry.knowledge.comparison import compare
    c = compare(["r18-baseline", "3f2a9c1e"])
    c.param_differences            # ['lr', 'optimizer.name']
    c.histories["val_loss"]        # AlignedHistory(steps=[...], values=[[...], [...]])
    c.differences()                # {'params': [...], 'metrics': [...], 'code': [...], ...}

Everything is read in one transaction: the runs in one batch of queries, then each run's
metric chunks by its key, so the cost grows with the runs compared, not with the store.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Final

from registry._history import Columns
from registry.config import Workspace, load_workspace
from registry.entities import MetricSummary, RunRecord
from registry.errors import CairnError

if TYPE_CHECKING:
    from registry.store import SqlStore

__all__ = [
    "CODE_FIELDS", "MISSING", "AlignedHistory", "CompareError", "Comparison",
    "build_comparison", "compare", "flatten", "same",
]

CODE_FIELDS: Final = ("commit", "dirty", "diff_sha256", "branch", "state")
"""Code fields compared; the first three plus ``state`` decide ``code_differs``."""

_CODE_CONTENT: Final = frozenset({"commit", "dirty", "diff_sha256", "state"})
_NONFINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}

Table = dict[str, list[Any]]
"""Key -> one value per run, in the order the runs were given."""


class CompareError(CairnError, ValueError):
    """The runs given cannot be compared: fewer than two, or one run named twice."""

    def __init__(self, message: str, refs: Sequence[str]) -> None:
        self.refs = list(refs)
        super().__init__(message)


class _Missing(enum.Enum):
    MISSING = "—"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing.MISSING
"""A value a run did not record at all (unlike None, which it recorded). Renders as "—"."""


@dataclass(frozen=True)
class AlignedHistory:
    """One metric of every run on a common step axis: ``values[i][j]`` is run i's value at
    ``steps[j]``, None where run i logged nothing at that step."""

    steps: list[int]
    values: list[list[float | None]]


@dataclass
class Comparison:
    """Runs side by side. Every table maps a key to one value per run, in ``runs`` order;
    each ``*_differences`` lists the keys whose values are not all the same."""

    runs: list[RunRecord]
    params: Table
    param_differences: list[str]
    metrics: dict[str, list[MetricSummary | None]]
    metric_differences: list[str]
    histories: dict[str, AlignedHistory]
    code: Table
    code_differences: list[str]
    commits: list[str]
    data: Table
    data_differences: list[str]
    hardware: Table
    hardware_differences: list[str]
    environment: Table
    environment_differences: list[str]

    @property
    def code_differs(self) -> bool:
        """Whether the code itself differs (commit, uncommitted changes or git state);
        a different branch name alone does not count."""
        return not _CODE_CONTENT.isdisjoint(self.code_differences)

    def differences(self) -> dict[str, list[str]]:
        """The differing keys of each section; an empty list where all runs agree."""
        return {
            "params": self.param_differences, "metrics": self.metric_differences,
            "code": self.code_differences, "data": self.data_differences,
            "hardware": self.hardware_differences,
            "environment": self.environment_differences,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: MISSING becomes null (each run's own record, in ``runs``, still
        tells a missing key from a None value) and non-finite numbers become "NaN",
        "Infinity" or "-Infinity", as in run exports."""
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        data["code_differs"] = self.code_differs
        return data


def compare(run_refs: Sequence[str], *, workspace: Workspace | None = None,
            store: SqlStore | None = None, history_keys: Iterable[str] | None = None,
            max_points: int | None = None) -> Comparison:
    """Compare runs given by id, unique id prefix or unique name (at least two, each once).

    ``history_keys`` limits which metric histories are aligned (None: all, empty: none);
    ``max_points`` thins each aligned history to at most that many steps, keeping the last.
    """
    refs = list(run_refs)
    if len(refs) < 2:
        raise CompareError(f"compare needs at least two runs, got {len(refs)}", refs)
    if max_points is not None and max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    keys = [history_keys] if isinstance(history_keys, str) else (
        None if history_keys is None else list(history_keys))
    store = store or _open_store(workspace)
    with store.snapshot():  # one consistent view of runs that may still be written
        pks = _unique_pks(refs, store.resolve_all(refs))
        runs = store.get_runs(pks)
        columns = store.metric_columns(pks, keys) if keys != [] else [{} for _ in pks]
    return build_comparison(runs, columns, max_points=max_points)


def build_comparison(runs: Sequence[RunRecord], columns: Sequence[Mapping[str, Columns]], *,
                     max_points: int | None = None) -> Comparison:
    """Compare records already read; ``columns`` holds each run's metric histories as
    returned by ``SqlStore.metric_columns``."""
    params = _table([r.params for r in runs])
    metrics = {k: [r.metrics.get(k) for r in runs]
               for k in sorted(set().union(*(r.metrics for r in runs)))}
    code = {f: [r.code.get(f) for r in runs] for f in CODE_FIELDS}
    data = _table([_data_versions(r) for r in runs])
    hardware = _table([flatten(r.hardware) for r in runs])
    environment = _table([flatten(_environment(r)) for r in runs])
    return Comparison(
        runs=list(runs), params=params, param_differences=_differing(params),
        metrics=metrics, metric_differences=_differing(metrics, _same_summary),
        histories=_histories(columns, max_points), code=code, code_differences=_differing(code),
        commits=list(dict.fromkeys(c for c in code["commit"] if c)),
        data=data, data_differences=_differing(data),
        hardware=hardware, hardware_differences=_differing(hardware),
        environment=environment, environment_differences=_differing(environment),
    )


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys; lists of mappings to ``key[i].field``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                flat.update(flatten(item, f"{name}[{i}]."))
        else:
            flat[name] = value
    return flat


def same(a: Any, b: Any) -> bool:
    """Equal values: numbers by value (1 == 1.0, NaN == NaN, but True is not 1), the rest
    by type and value."""
    if _is_number(a) and _is_number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _open_store(workspace: Workspace | None) -> SqlStore:
    return (workspace or load_workspace()).open_store()


def _unique_pks(refs: list[str], pks: list[int]) -> list[int]:
    first: dict[int, str] = {}
    for ref, pk in zip(refs, pks, strict=True):
        if pk in first:
            raise CompareError(f"{first[pk]!r} and {ref!r} name the same run; name each run "
                               "once", refs)
        first[pk] = ref
    return pks


def _data_versions(r: RunRecord) -> dict[str, str | None]:
    """``role:path`` -> hash; a path used in two versions in one role shows both."""
    hashes: dict[str, list[str | None]] = {}
    for d in r.datasets:
        hashes.setdefault(f"{d.role}:{d.path}", []).append(d.hash)
    return {k: v[0] if len(v) == 1 else ", ".join(sorted(map(str, v)))
            for k, v in hashes.items()}


def _environment(r: RunRecord) -> dict[str, Any]:
    # Key package versions stay (under ``packages``); the full list would be all noise.
    return {k: v for k, v in r.environment.items() if k != "all_packages"}


def _table(per_run: Sequence[Mapping[str, Any]]) -> Table:
    keys = sorted(set().union(*per_run))
    return {k: [values.get(k, MISSING) for values in per_run] for k in keys}


def _differing(table: Mapping[str, list[Any]], equal=same) -> list[str]:
    return [k for k, values in table.items() if not all(equal(values[0], v) for v in values)]


def _same_summary(a: MetricSummary | None, b: MetricSummary | None) -> bool:
    if a is None or b is None:
        return a is b
    return same(a.last, b.last) and same(a.min, b.min) and same(a.max, b.max)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _histories(columns: Sequence[Mapping[str, Columns]],
               max_points: int | None) -> dict[str, AlignedHistory]:
    keys = sorted(set().union(*columns))
    return {k: _align([c.get(k) for c in columns], max_points) for k in keys}


def _align(series: Sequence[Columns | None], max_points: int | None) -> AlignedHistory:
    steps = sorted(set().union(*(s[0] for s in series if s is not None)))
    if max_points is not None:
        steps = _thin(steps, max_points)
    return AlignedHistory(steps, [_on_steps(s, steps) for s in series])


def _on_steps(series: Columns | None, steps: list[int]) -> list[float | None]:
    """One run's values at the given steps (None where it has none)."""
    if series is None:
        return [None] * len(steps)
    if series[0].tolist() == steps:  # the usual case: each step once, in order
        return series[1].tolist()
    by_step = dict(zip(series[0], series[1], strict=True))  # logging order: the last one wins
    return [by_step.get(step) for step in steps]


def _thin(steps: list[int], max_points: int) -> list[int]:
    """Every k-th step and always the last, k chosen so at most ``max_points`` remain."""
    if len(steps) <= max_points:
        return steps
    k = -(-(len(steps) - 1) // (max_points - 1))
    kept = steps[::k]
    if kept[-1] != steps[-1]:
        kept.append(steps[-1])
    return kept


def _plain(obj: Any) -> Any:
    if obj is MISSING:
        return None
    if isinstance(obj, float):
        return _number(obj)
    if isinstance(obj, AlignedHistory):  # the bulk of the data: a fast path
        return {"steps": obj.steps, "values": [[None if v is None else _number(v) for v in vs]
                                               for vs in obj.values]}
    if isinstance(obj, RunRecord):
        return _plain(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    return obj


def _number(v: float) -> float | str:
    return v if math.isfinite(v) else _NONFINITE.get(v, "NaN")
