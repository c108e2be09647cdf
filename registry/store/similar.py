"""Queries behind "has this been tried?": candidates by fingerprint, data and model family.

Each function reads in one transaction of its own; the scoring is
:mod:`registry.knowledge.similarity`'s."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, select, union

from registry._params import ParamValue
from registry.store.schema import dataset, metric_summary, project, run, run_dataset

__all__ = ["Pool", "best_on_data", "params_of", "pool"]


@dataclass(frozen=True)
class Pool:
    """The runs worth scoring against a spec: those with its exact fingerprint, then the
    newest on the same data and family, on the same data, of the same family; with each
    one's (data_key, model_family)."""

    exact: list[int]
    candidates: list[int]  # exact ones first, each run once
    keys: dict[int, tuple[str | None, str | None]]


def pool(store: Any, *, fingerprint: str, data_key: str | None, family: str | None,
         exclude: int | None = None, exact_limit: int = 20, limit: int = 40) -> Pool:
    """The candidate runs for "has this been tried?", read in one transaction (``limit`` of
    each kind, every one read from a (key, start_time) index); ``exclude``: the run itself."""
    with store.reading() as conn:
        exact = [pk for pk in conn.execute(
            select(run.c.pk).where(run.c.fingerprint == fingerprint)
            .order_by(run.c.start_time.desc()).limit(exact_limit)).scalars() if pk != exclude]
        found = list(dict.fromkeys([*exact, *_candidates(conn, data_key, family, limit)]))
        found = [pk for pk in found if pk != exclude]
        keys = _keys_of(conn, found)
    return Pool(exact, found, keys)


def _candidates(conn: Connection, data_key: str | None, family: str | None,
                limit: int) -> list[int]:
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
    return list(conn.execute(parts[0] if len(parts) == 1 else union(*parts)).scalars())


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


def _keys_of(conn: Connection, pks: Sequence[int]
             ) -> dict[int, tuple[str | None, str | None]]:
    query = select(run.c.pk, run.c.data_key, run.c.model_family).where(run.c.pk.in_(list(pks)))
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
