"""The dashboard's reads that combine the registry's functions, without Streamlit.

:mod:`dashboard.data` caches these (and the registry's own reads) for the pages; the
benchmarks call them as they are. Each takes the open, read-only store (and the workspace,
for its settings), and every read is bounded (a page of runs, a sample of the newest, a
window of days), so pages stay fast on a store of 100,000 runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dashboard._curves import BUCKETS, Curves, downsample
from dashboard._overlap import OverlapGroup, exact_groups, near_groups
from registry.config import Workspace
from registry.entities import RunRecord, RunStatus
from registry.errors import AmbiguousRunError, RunNotFoundError
from registry.knowledge.groups import GroupComparison, GroupError, compare_groups
from registry.knowledge.mov import MovMeasurement
from registry.knowledge.similarity import SIMILAR_ENOUGH, Prior, find_priors, spec_of
from registry.store import links, mov, overview
from registry.store.groups import Group, groups_of

__all__ = ["COUNT_CAP", "STATUSES", "SeedGroups", "exact_duplicates", "get_runs",
           "known_runs", "mlflow_links", "near_duplicates", "run_curves", "run_mov", "run_of",
           "seed_groups", "similar_runs"]

COUNT_CAP = 10_000  # the Runs page counts matches up to this many
STATUSES = (*RunStatus.ENDED, RunStatus.RUNNING, RunStatus.CRASHED)


def get_runs(store, refs: Sequence[str]) -> list[RunRecord]:
    """Full records (params, tags, data, artifacts) of runs given by id, prefix or name."""
    return store.get_runs(store.resolve_all(refs))


def known_runs(store, refs: Sequence[str]) -> list[RunRecord]:
    """Summaries of those runs that the store holds (a card may name runs of another store)."""
    pks = []
    for ref in refs:
        try:
            pks.append(store.resolve(ref))
        except (RunNotFoundError, AmbiguousRunError):
            continue
    return store.get_runs(pks, details=False)


def exact_duplicates(store, project: str | None, days: int, across_owners: bool = True,
                     limit: int = 30) -> list[OverlapGroup]:
    """Experiments run more than once (same code, params and data), newest first."""
    found = overview.duplicate_fingerprints(store, project, days, across_owners=across_owners,
                                            limit=limit)
    members = [(fp, pk) for fp, pks in found for pk in pks]
    records = store.get_runs([pk for _, pk in members], details=False)
    return exact_groups([fp for fp, _ in found],
                        zip([fp for fp, _ in members], records, strict=True))


def near_duplicates(store, ignore: Sequence[str], project: str | None, days: int,
                    sample: int = 40) -> list[OverlapGroup]:
    """Nearly the same experiment run by different people: the newest ``sample`` runs of
    the window, each with its similar earlier runs (score >= SIMILAR_ENOUGH). ``ignore``:
    the params that do not count (the workspace's ``runs.fingerprint_ignore``)."""
    since = overview.window_start(store, project, days)
    pks = store.run_keys(project_name=project, limit=sample, since=since)
    found = []
    for pk, record in zip(pks, store.get_runs(pks), strict=True):
        for prior in find_priors(store, spec_of(record, ignore), exclude=pk, limit=5,
                                 min_score=SIMILAR_ENOUGH):
            if not prior.exact and prior.run.owner != record.owner:
                found.append((prior.run.id, record.id, prior.score, prior.reasons))
    keys = store.keys_of(sorted({i for a, b, _, _ in found for i in (a, b)}))
    full = {r.id: r for r in store.get_runs(list(keys.values()))}
    pairs = [(full[a], full[b], s, why) for a, b, s, why in found]
    return near_groups(pairs, {i: r.params for i, r in full.items()})


# -- one run -----------------------------------------------------------------------------------


def run_of(store, ref: str) -> tuple[int, RunRecord]:
    """(integer key, full record) of the run given by id, id prefix or name; raises
    RunNotFoundError or AmbiguousRunError."""
    pk = store.resolve(ref)
    return pk, store.get_run(pk)


def run_curves(store, pk: int, keys: Sequence[str], axis: str = "step",
               buckets: int = BUCKETS) -> Curves:
    """The histories of ``keys`` thinned for drawing (see :mod:`dashboard._curves`)."""
    columns = store.metric_columns([pk], list(keys))[0]
    return downsample({k: columns[k] for k in keys if k in columns}, axis, buckets)


def similar_runs(store, ignore: Sequence[str], pk: int, record: RunRecord,
                 limit: int = 10) -> list[Prior]:
    """The runs this one repeats or resembles ("has this been tried?"), best match first."""
    return find_priors(store, spec_of(record, ignore), exclude=pk, limit=limit)


def run_mov(store, pk: int) -> list[MovMeasurement]:
    """The MoV measurements recorded with the run."""
    return mov.of_runs(store, [pk]).get(pk, [])


def mlflow_links(store, pk: int) -> list[tuple[str, str, str]]:
    """(tracking URI, experiment id, MLflow run id) of each MLflow run linked to this one."""
    return [(uri, link.experiment_id, link.mlflow_run_id) for uri, link in links.of_run(store, pk)]


# -- seed groups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedGroups:
    """The groups of seeds that some chosen runs belong to (in the order the runs were
    chosen), and the verdict of each later group against the first on ``metric``."""

    groups: list[Group]
    chosen: dict[str, list[str]]  # group key -> ids of the chosen runs in it
    metric: str | None = None
    verdicts: list[GroupComparison | str] = field(default_factory=list)  # str: why not


def seed_groups(store, ws: Workspace, runs: Sequence[RunRecord],
                metric: str | None) -> SeedGroups:
    """The groups of ``runs`` (by the key stored with each run) and, when they form two
    groups or more, each against the first on ``metric``."""
    keys = store.keys_of([r.id for r in runs])
    found = groups_of(store, [keys[r.id] for r in runs if r.id in keys])
    by_key: dict[str, Group] = {}
    chosen: dict[str, list[str]] = {}
    for run in runs:
        group = found.get(keys.get(run.id, -1))
        if group is not None:
            by_key.setdefault(group.key, group)
            chosen.setdefault(group.key, []).append(run.id)
    groups = list(by_key.values())
    if metric is None or len(groups) < 2:
        return SeedGroups(groups, chosen, metric)
    first = chosen[groups[0].key][0]
    return SeedGroups(groups, chosen, metric, [
        _verdict(store, ws, first, chosen[g.key][0], metric) for g in groups[1:]])


def _verdict(store, ws: Workspace, a: str, b: str, metric: str) -> GroupComparison | str:
    try:
        return compare_groups(a, b, metric, workspace=ws, store=store)
    except GroupError as exc:
        return str(exc)
