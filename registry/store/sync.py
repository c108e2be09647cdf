"""What ``cairn sync`` compares: a short signature of every run, read in a few queries.

Two stores hold the same version of a run when their signatures agree. A signature has two
parts: what was *recorded* (status, times, metric points, params, data, artifacts) and what
people *edit* afterwards (name, notes, question, conclusion, tags), so a sync can tell a run
that trained further from one whose notes were edited. Reading every run's signature costs
one pass over the run table and one aggregate per child table: a no-change sync of thousands
of runs reads no metric history at all.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from registry.store import schema as s

__all__ = ["SYNCED_FROM", "Signature", "origins", "signatures"]

#: The tag a sync adds to the runs it sends: where they came from. Not part of a signature.
SYNCED_FROM = "cairn.synced_from"

_RECORDED = ("status", "start_time", "end_time", "heartbeat_time", "failure", "fingerprint",
             "git_commit", "git_dirty", "parent_id")
_EDITED = ("name", "notes", "question", "conclusion")


@dataclass(frozen=True)
class Signature:
    """A run's version in one store: digests of its recorded and its edited parts, and how
    many metric points it holds (the side with more recorded the run further)."""

    recorded: str
    edited: str
    points: int


def signatures(store: Any) -> dict[str, Signature]:
    """Every run's signature, by run id, read in one transaction."""
    with store.reading() as conn:
        runs = conn.execute(select(s.run.c.pk, s.run.c.id, *(s.run.c[c] for c in _RECORDED),
                                   *(s.run.c[c] for c in _EDITED))).all()
        metrics = _by_run(conn, select(s.metric_summary.c.run_pk,
                                       func.sum(s.metric_summary.c.count),
                                       func.max(s.metric_summary.c.last_time),
                                       func.count()).group_by(s.metric_summary.c.run_pk))
        counts = {name: _by_run(conn, select(t.c.run_pk, func.count()).group_by(t.c.run_pk))
                  for name, t in (("params", s.param), ("data", s.run_dataset),
                                  ("artifacts", s.artifact))}
        tags: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for pk, key, value in conn.execute(select(s.tag.c.run_pk, s.tag.c.key, s.tag.c.value)
                                           .where(s.tag.c.key != SYNCED_FROM)):
            tags[pk].append((key, value))
    found = {}
    for row in runs:
        pk, run_id = row[0], row[1]
        points, last, keys = metrics.get(pk, (0, None, 0))
        recorded = [*row[2:2 + len(_RECORDED)], int(points or 0), _float(last), int(keys),
                    *(int(counts[n].get(pk, 0)) for n in ("params", "data", "artifacts"))]
        edited = [*row[2 + len(_RECORDED):], sorted(tags.get(pk, []))]
        found[run_id] = Signature(_digest(recorded), _digest(edited), int(points or 0))
    return found


def origins(store: Any, run_pks: list[int]) -> dict[int, str]:
    """Where each of these runs was synced from (``SYNCED_FROM``), for those that were."""
    if not run_pks:
        return {}
    with store.reading() as conn:
        return dict(conn.execute(select(s.tag.c.run_pk, s.tag.c.value).where(
            s.tag.c.run_pk.in_(run_pks), s.tag.c.key == SYNCED_FROM)).all())


def _by_run(conn: Any, query: Any) -> dict[int, Any]:
    return {row[0]: (tuple(row[1:]) if len(row) > 2 else row[1]) for row in conn.execute(query)}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _digest(parts: list[Any]) -> str:
    # Numbers are ints and floats by now (PostgreSQL sums are Decimals): the same run gives the
    # same text on either dialect.
    text = json.dumps(parts, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
