"""Grouping runs that repeat each other: plain data, no store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.entities import RunRecord

__all__ = ["OverlapGroup", "exact_groups", "near_groups"]


@dataclass(frozen=True)
class OverlapGroup:
    """Runs of one experiment (``exact``) or of nearly the same one, oldest first.

    ``score`` is the lowest similarity that joins the group (1.0 when exact); ``reasons``
    and ``differences`` (param -> values, one per run) say what is alike and what is not."""

    runs: list[RunRecord]
    exact: bool
    score: float = 1.0
    reasons: tuple[str, ...] = ()
    differences: Mapping[str, list[Any]] = field(default_factory=dict)

    @property
    def owners(self) -> list[str]:
        return sorted({r.owner for r in self.runs})

    @property
    def first(self) -> RunRecord:
        return self.runs[0]

    @property
    def last(self) -> RunRecord:
        return self.runs[-1]


def exact_groups(fingerprints: Sequence[str], members: Iterable[tuple[str, RunRecord]]
                 ) -> list[OverlapGroup]:
    """One group per fingerprint, in the order given; ``members`` pairs a fingerprint with
    one of its runs (oldest first)."""
    by_print: dict[str, list[RunRecord]] = {fp: [] for fp in fingerprints}
    for fp, record in members:
        by_print.setdefault(fp, []).append(record)
    return [OverlapGroup(by_print[fp], exact=True) for fp in fingerprints if len(by_print[fp]) > 1]


def near_groups(pairs: Iterable[tuple[RunRecord, RunRecord, float, Sequence[str]]],
                params: Mapping[str, Mapping[str, Any]]) -> list[OverlapGroup]:
    """Join pairs of similar runs into groups (runs linked through a chain of pairs form one
    group), newest group first. ``params`` holds each run's params, by run id, for the
    differences."""
    parent: dict[str, str] = {}
    records: dict[str, RunRecord] = {}
    links: list[tuple[str, str, float, Sequence[str]]] = []
    for a, b, score, reasons in pairs:
        records[a.id], records[b.id] = a, b
        _union(parent, a.id, b.id)
        links.append((a.id, b.id, score, reasons))
    members: dict[str, list[str]] = {}
    for run_id in records:
        members.setdefault(_find(parent, run_id), []).append(run_id)
    groups = []
    for root, ids in members.items():
        runs = sorted((records[i] for i in ids), key=lambda r: r.start_time)
        inside = [(s, why) for a, _, s, why in links if _find(parent, a) == root]
        reasons = tuple(dict.fromkeys(w for _, why in inside for w in why))
        groups.append(OverlapGroup(runs, exact=False, score=min(s for s, _ in inside),
                                   reasons=reasons, differences=_differences(runs, params)))
    return sorted(groups, key=lambda g: g.last.start_time, reverse=True)


def _differences(runs: Sequence[RunRecord], params: Mapping[str, Mapping[str, Any]]
                 ) -> dict[str, list[Any]]:
    tables = [params.get(r.id, {}) for r in runs]
    keys = sorted(set().union(*tables))
    return {k: [t.get(k) for t in tables] for k in keys
            if any(t.get(k) != tables[0].get(k) for t in tables)}


def _find(parent: dict[str, str], item: str) -> str:
    parent.setdefault(item, item)
    while parent[item] != item:
        parent[item] = parent[parent[item]]
        item = parent[item]
    return item


def _union(parent: dict[str, str], a: str, b: str) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[rb] = ra
