"""Aggregates over the registry for an overview (the dashboard's): what values are present,
runs per week, who works on what, and experiments run more than once.

Every function reads indexed columns in a bounded window (the newest runs, a number of days
back from the newest start), so it stays fast on a store of 100,000 runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, Select, cast, distinct, func, select

from registry.store.schema import dataset, metric_summary, project, run

__all__ = [
    "WEEK",
    "Facets",
    "activity",
    "duplicate_fingerprints",
    "facets",
    "metric_keys",
    "weekly_runs",
    "window_start",
]

WEEK = 7 * 24 * 3600.0
DAY = 24 * 3600.0


@dataclass(frozen=True)
class Facets:
    """Every value present in the store of what runs are filtered on."""

    projects: list[str]
    owners: list[str]
    families: list[str]
    datasets: list[tuple[str, str]]  # (path, hash)


def facets(store: Any) -> Facets:
    """Projects, owners, model families and dataset versions present in the store."""
    with store.reading() as conn:
        return Facets(
            projects=list(conn.execute(select(project.c.name).order_by(project.c.name))
                          .scalars()),
            owners=list(conn.execute(select(run.c.owner).distinct().order_by(run.c.owner))
                        .scalars()),
            families=list(conn.execute(
                select(run.c.model_family).distinct().where(run.c.model_family.is_not(None))
                .order_by(run.c.model_family)).scalars()),
            datasets=[(p, h) for p, h in conn.execute(
                select(dataset.c.path, dataset.c.hash).where(dataset.c.hash.is_not(None))
                .order_by(dataset.c.path, dataset.c.hash))],
        )


def metric_keys(store: Any, runs: int = 200) -> list[str]:
    """Metric keys the newest ``runs`` runs logged (not of the whole store: a full scan)."""
    newest = select(run.c.pk).order_by(run.c.start_time.desc()).limit(runs).subquery()
    query = (select(metric_summary.c.key).distinct()
             .where(metric_summary.c.run_pk.in_(select(newest.c.pk)))
             .order_by(metric_summary.c.key))
    with store.reading() as conn:
        return list(conn.execute(query).scalars())


def window_start(store: Any, project_name: str | None, days: float) -> float:
    """``days`` before the newest run's start (of the project): windows are measured back from
    it, not from the clock, so a store of old runs still shows its last weeks."""
    with store.reading() as conn:
        return _since(conn, project_name, days)


def weekly_runs(store: Any, project_name: str | None, weeks: int = 26) -> list[dict[str, Any]]:
    """Runs per week and owner over the last ``weeks`` weeks of activity: dicts of week
    (its start, a timestamp), owner and runs."""
    ratio = run.c.start_time / WEEK
    with store.reading() as conn:
        # CAST truncates on SQLite but rounds on PostgreSQL; start times are positive.
        week = cast(ratio, Integer) if conn.dialect.name == "sqlite" else \
            cast(func.floor(ratio), Integer)
        stmt = (select(week.label("week"), run.c.owner, func.count().label("runs"))
                .where(run.c.start_time >= _since(conn, project_name, weeks * 7))
                .group_by(week, run.c.owner).order_by(week))
        found = conn.execute(_in_project(stmt, project_name)).all()
    return [{"week": n * WEEK, "owner": owner, "runs": count} for n, owner, count in found]


def activity(store: Any, project_name: str | None, days: int = 30) -> list[dict[str, Any]]:
    """Who ran what in the last ``days`` days of activity: dicts of owner, project, family,
    runs and last (start time), most recent first."""
    stmt = (select(run.c.owner, project.c.name.label("project"),
                   run.c.model_family.label("family"), func.count().label("runs"),
                   func.max(run.c.start_time).label("last"))
            .join(project, project.c.id == run.c.project_id)
            .group_by(run.c.owner, project.c.name, run.c.model_family)
            .order_by(func.max(run.c.start_time).desc()))
    if project_name is not None:
        stmt = stmt.where(project.c.name == project_name)
    with store.reading() as conn:
        stmt = stmt.where(run.c.start_time >= _since(conn, project_name, days))
        return [dict(row._mapping) for row in conn.execute(stmt)]


def duplicate_fingerprints(store: Any, project_name: str | None, days: float, *,
                           across_owners: bool = True, limit: int = 30
                           ) -> list[tuple[str, list[int]]]:
    """Fingerprints run more than once in the last ``days`` days of activity (by more than one
    person when ``across_owners``), newest first, each with its runs' keys, oldest first."""
    owners = func.count(distinct(run.c.owner))
    with store.reading() as conn:
        stmt = (select(run.c.fingerprint)
                .where(run.c.fingerprint.is_not(None),
                       run.c.start_time >= _since(conn, project_name, days))
                .group_by(run.c.fingerprint)
                .having(owners > 1 if across_owners else func.count() > 1)
                .order_by(func.max(run.c.start_time).desc()).limit(limit))
        prints = list(conn.execute(_in_project(stmt, project_name)).scalars())
        members = conn.execute(
            select(run.c.pk, run.c.fingerprint).where(run.c.fingerprint.in_(prints))
            .order_by(run.c.start_time)).all() if prints else []
    grouped: dict[str, list[int]] = {fp: [] for fp in prints}
    for pk, fingerprint in members:
        grouped[fingerprint].append(pk)
    return list(grouped.items())


def _since(conn: Connection, project_name: str | None, days: float) -> float:
    latest = conn.execute(_in_project(select(func.max(run.c.start_time)), project_name)).scalar()
    return (latest or 0.0) - days * DAY


def _in_project(stmt: Select, project_name: str | None) -> Select:
    if project_name is None:
        return stmt
    ids = select(project.c.id).where(project.c.name == project_name)
    return stmt.where(run.c.project_id.in_(ids.scalar_subquery()))
