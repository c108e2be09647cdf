"""The dashboard's own SQL: aggregate statements over the registry's tables, built here and
executed only by :mod:`dashboard.data`. Each one reads indexed columns in a bounded window."""

from __future__ import annotations

from sqlalchemy import Integer, Select, cast, distinct, func, literal, select

from registry.store.schema import dataset, metric_summary, project, run

__all__ = [
    "WEEK",
    "activity",
    "capped_count",
    "dataset_versions",
    "duplicate_fingerprints",
    "families",
    "latest_start",
    "owners",
    "pks_of_ids",
    "project_names",
    "recent_metric_keys",
    "runs_of_fingerprints",
    "weekly_runs",
]

WEEK = 7 * 24 * 3600.0


def project_names() -> Select:
    return select(project.c.name).order_by(project.c.name)


def owners() -> Select:
    return select(run.c.owner).distinct().order_by(run.c.owner)


def families() -> Select:
    return (select(run.c.model_family).distinct().where(run.c.model_family.is_not(None))
            .order_by(run.c.model_family))


def dataset_versions() -> Select:
    return select(dataset.c.path, dataset.c.hash).where(dataset.c.hash.is_not(None)).order_by(
        dataset.c.path, dataset.c.hash)


def recent_metric_keys(runs: int) -> Select:
    """Metric keys of the newest ``runs`` runs (not of the whole store: that is a full scan)."""
    newest = select(run.c.pk).order_by(run.c.start_time.desc()).limit(runs).subquery()
    return (select(metric_summary.c.key).distinct()
            .where(metric_summary.c.run_pk.in_(select(newest.c.pk)))
            .order_by(metric_summary.c.key))


def capped_count(condition, cap: int) -> Select:
    """How many runs match, counting no further than ``cap``."""
    rows = select(literal(1)).select_from(run)
    if condition is not None:
        rows = rows.where(condition)
    return select(func.count()).select_from(rows.limit(cap).subquery())


def latest_start(project_name: str | None) -> Select:
    """The newest run's start time: windows are measured back from it, not from the clock,
    so a store of old runs still shows its last weeks."""
    return _in_project(select(func.max(run.c.start_time)), project_name)


def weekly_runs(project_name: str | None, since: float, dialect: str) -> Select:
    """(week number, owner, runs) since ``since``; week number = start_time // WEEK."""
    ratio = run.c.start_time / WEEK
    # CAST truncates on SQLite but rounds on PostgreSQL; start times are positive.
    week = cast(ratio, Integer) if dialect == "sqlite" else cast(func.floor(ratio), Integer)
    stmt = (select(week.label("week"), run.c.owner, func.count().label("runs"))
            .where(run.c.start_time >= since).group_by(week, run.c.owner).order_by(week))
    return _in_project(stmt, project_name)


def activity(project_name: str | None, since: float) -> Select:
    """Who ran what since ``since``: (owner, project, family, runs, last start)."""
    stmt = (select(run.c.owner, project.c.name.label("project"),
                   run.c.model_family.label("family"), func.count().label("runs"),
                   func.max(run.c.start_time).label("last"))
            .join(project, project.c.id == run.c.project_id)
            .where(run.c.start_time >= since)
            .group_by(run.c.owner, project.c.name, run.c.model_family)
            .order_by(func.max(run.c.start_time).desc()))
    return stmt if project_name is None else stmt.where(project.c.name == project_name)


def duplicate_fingerprints(project_name: str | None, since: float, *, across_owners: bool,
                           limit: int) -> Select:
    """Fingerprints run more than once since ``since`` (by more than one person when
    ``across_owners``), newest first: (fingerprint, runs, owners, last start)."""
    owners_ = func.count(distinct(run.c.owner))
    stmt = (select(run.c.fingerprint, func.count().label("runs"), owners_.label("owners"),
                   func.max(run.c.start_time).label("last"))
            .where(run.c.fingerprint.is_not(None), run.c.start_time >= since)
            .group_by(run.c.fingerprint)
            .having(owners_ > 1 if across_owners else func.count() > 1)
            .order_by(func.max(run.c.start_time).desc()).limit(limit))
    return _in_project(stmt, project_name)


def runs_of_fingerprints(fingerprints: list[str]) -> Select:
    return (select(run.c.pk, run.c.fingerprint).where(run.c.fingerprint.in_(fingerprints))
            .order_by(run.c.start_time))


def _in_project(stmt: Select, project_name: str | None) -> Select:
    if project_name is None:
        return stmt
    ids = select(project.c.id).where(project.c.name == project_name)
    return stmt.where(run.c.project_id.in_(ids.scalar_subquery()))


def pks_of_ids(ids: list[str]) -> Select:
    return select(run.c.pk, run.c.id).where(run.c.id.in_(ids))
