"""The dashboard's reads that combine the registry's functions, without Streamlit.

:mod:`dashboard.data` caches these (and the registry's own reads) for the pages; the
benchmarks call them as they are. Each takes the open, read-only store (and the workspace,
for its settings), and every read is bounded (a page of runs, a sample of the newest, a
window of days), so pages stay fast on a store of 100,000 runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashboard._overlap import OverlapGroup, exact_groups, near_groups
from registry.entities import RunRecord, RunStatus
from registry.errors import AmbiguousRunError, RunNotFoundError
from registry.knowledge.similarity import SIMILAR_ENOUGH, find_priors, spec_of
from registry.store import overview

__all__ = ["COUNT_CAP", "STATUSES", "exact_duplicates", "get_runs", "known_runs",
           "near_duplicates"]

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
