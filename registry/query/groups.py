"""The runs a query matches, in groups of seeds: each group's size and, per metric, the mean,
standard deviation, min and max of the runs' last values.

    import registry
    for g in registry.groups("project = defects", metric="val_acc", sort="-val_acc", limit=10):
        s = g.metrics.get("val_acc")
        print(g.id, g.n, s and s.mean, s and s.std)

Runs that differ only in their seed params form a group (see :mod:`registry.store.groups`
for the key, :mod:`registry.knowledge.groups` to compare two groups). Only FINISHED runs are
counted unless ``include_unfinished``: the others, RUNNING ones included, stay members,
counted in ``left_out`` by status. NaN and infinite last values are left out of a metric and
counted in its ``nonfinite``; counted runs without the metric in its ``missing``.

Every group is counted from one index; statistics are computed for the page asked for only
(for every group when sorting by a metric, for that metric). This lives beside search because
it reads a query's runs: the knowledge layer may not import the query language.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from registry.config import Workspace, load_workspace
from registry.query._api import where
from registry.store.groups import Group, Keying, rekey, tally, with_stats

__all__ = ["Group", "groups"]


def groups(query: str = "", *, metric: str | None = None, sort: str | None = None,
           limit: int | None = None, offset: int = 0, min_runs: int = 1,
           include_unfinished: bool = False, workspace: Workspace | None = None,
           store: Any = None) -> list[Group]:
    """Groups of the runs matching ``query``, each with statistics of ``metric`` (of every
    metric when None). ``sort``: ``started`` (newest member; the default), ``n`` (runs
    counted) or a metric (by its mean, groups without it last), ``-`` first for descending;
    ``-started`` when None. ``limit``/``offset``: one page (all groups when ``limit`` is None).
    ``min_runs``: leave out groups of fewer members (2: only repeated experiments). Raises
    QueryError for a malformed query."""
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
    ws = workspace or load_workspace()
    store = store or ws.open_store()
    keying = Keying(tuple(ws.seed_params), tuple(ws.fingerprint_ignore))
    with store.reading() as conn:
        condition = where(conn, query)
    options = {"condition": condition, "statuses": None if include_unfinished else ("FINISHED",),
               "extra": rekey(store, keying, condition)}  # keys new since the last call, once
    field, descending = _field(sort)
    by_metric = field not in ("started", "n")
    found = [g for g in tally(store, keying, metric=field if by_metric else None, **options)
             if g.runs >= min_runs]
    if by_metric:
        found.sort(key=lambda g: _by_mean(g, field, descending))
    else:
        found.sort(key=(lambda g: (g.newest, g.key)) if field == "started" else
                   (lambda g: (g.n, g.runs, g.newest, g.key)), reverse=descending)
    return with_stats(store, _page(found, offset, limit), metric=metric, **options)


def _field(sort: str | None) -> tuple[str, bool]:
    text = (sort or "-started").strip()
    return text.lstrip("-+").strip(), text.startswith("-")


def _page(found: Sequence[Group], offset: int, limit: int | None) -> list[Group]:
    return list(found[offset:] if limit is None else found[offset:offset + limit])


def _by_mean(g: Group, metric: str, descending: bool) -> tuple[bool, float, float, str]:
    """Groups without the metric last; ties: newest first."""
    stats = g.metrics.get(metric)
    mean = stats.mean if stats is not None else None
    if mean is None or not math.isfinite(mean):
        return True, 0.0, -g.newest, g.key
    return False, -mean if descending else mean, -g.newest, g.key
