"""Queries behind "has this been tried?": candidates by fingerprint, data and model family.

Each function reads in a transaction of its own; the scoring is
:mod:`registry.knowledge.similarity`'s."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, union

from registry._params import ParamValue
from registry.store.schema import dataset, metric_summary, project, run, run_dataset

__all__ = ["best_on_data", "candidates", "keys_of", "params_of", "same_fingerprint"]


def same_fingerprint(store: Any, fingerprint: str, *, exclude: int | None = None,
                     limit: int = 20) -> list[int]:
    """Runs with exactly this fingerprint, newest first."""
    query = (select(run.c.pk).where(run.c.fingerprint == fingerprint)
             .order_by(run.c.start_time.desc()).limit(limit))
    with store.reading() as conn:
        return [pk for pk in conn.execute(query).scalars() if pk != exclude]


def candidates(store: Any, *, data_key: str | None, family: str | None,
               exclude: int | None = None, limit: int = 40) -> list[int]:
    """The newest runs on the same data and family, on the same data, and of the same family
    (``limit`` of each, every one read from a (key, start_time) index)."""
    parts: list[Select] = []
    if data_key and family:
        parts.append(_newest((run.c.data_key == data_key) & (run.c.model_family == family),
                             limit))
    if data_key:
        parts.append(_newest(run.c.data_key == data_key, limit))
    if family:
        parts.append(_newest(run.c.model_family == family, limit))
    if not parts:
        return []
    query = parts[0] if len(parts) == 1 else union(*parts)
    with store.reading() as conn:
        return [pk for pk in conn.execute(query).scalars() if pk != exclude]


def _newest(condition, limit: int) -> Select:
    return (select(run.c.pk).where(condition).order_by(run.c.start_time.desc()).limit(limit)
            .subquery().select())


def params_of(store: Any, pks: Sequence[int]) -> dict[int, dict[str, ParamValue]]:
    """Typed params of several runs."""
    out: dict[int, dict[str, ParamValue]] = defaultdict(dict)
    if not pks:
        return out
    # Thousands of rows: plain driver rows, without SQLAlchemy's per-row result processing.
    with store.reading() as conn:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = ("SELECT run_pk, key, vtype, value_text, value_num FROM param WHERE run_pk IN ("
               + ", ".join([mark] * len(pks)) + ")")
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, [int(pk) for pk in pks])
            rows = cursor.fetchall()
        finally:
            cursor.close()
    for pk, key, vtype, text, number in rows:
        out[pk][key] = ParamValue(vtype, text, number)
    return out


def keys_of(store: Any, pks: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    """(data_key, model_family) of several runs."""
    query = select(run.c.pk, run.c.data_key, run.c.model_family).where(run.c.pk.in_(list(pks)))
    with store.reading() as conn:
        return {pk: (key, family) for pk, key, family in conn.execute(query)}


def best_on_data(store: Any, hash_prefix: str, metric: str, mode: str, *,
                 project_name: str | None = None, limit: int = 1) -> list[int]:
    """Finished runs that used a dataset whose hash starts with ``hash_prefix``, best first."""
    value = metric_summary.c.max if mode == "max" else metric_summary.c.min
    query = (
        select(run.c.pk)
        .join(run_dataset, run_dataset.c.run_pk == run.c.pk)
        .join(dataset, dataset.c.id == run_dataset.c.dataset_id)
        .join(metric_summary, (metric_summary.c.run_pk == run.c.pk)
              & (metric_summary.c.key == metric))
        .where(dataset.c.hash.startswith(hash_prefix, autoescape=True),
               run.c.status == "FINISHED", value.is_not(None))
        .group_by(run.c.pk, value, run.c.start_time)
        .order_by(value.desc() if mode == "max" else value.asc(), run.c.start_time.desc())
        .limit(limit)
    )
    if project_name is not None:
        query = query.join(project, project.c.id == run.c.project_id).where(
            project.c.name == project_name)
    with store.reading() as conn:
        return list(conn.execute(query).scalars())
