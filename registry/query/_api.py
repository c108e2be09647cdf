"""Run a query: on a connection (``search_pks``, ``count``) or on a workspace (``search``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, literal, select

from registry.config import Workspace, load_workspace
from registry.entities import RunRecord
from registry.query._plan import DEFAULT_POLICY, Policy, condition, find
from registry.query._shape import Shape, parsed
from registry.query._sort import parse_sort
from registry.store.schema import run

__all__ = ["SearchPage", "count", "count_up_to", "search", "search_pks", "where"]


@dataclass
class SearchPage:
    """One page of results: run summaries (metric summaries, no params or tags) in order."""

    runs: list[RunRecord]
    query: str
    sort: str | None
    limit: int
    offset: int
    has_more: bool = field(default=False)


def search(query: str = "", *, sort: str | None = None, limit: int = 20, offset: int = 0,
           workspace: Workspace | None = None, store: Any = None) -> SearchPage:
    """Runs of the workspace (or of an open ``store``) that match ``query``, one page of them,
    sorted by ``sort`` (default: newest first). Raises QueryError for a malformed query or
    sort."""
    store = store or (workspace or load_workspace()).open_store()
    with store.snapshot(), store.reading() as conn:  # the page and its records: one view
        pks = search_pks(conn, query, sort=sort, limit=limit + 1, offset=offset)
        runs = store.get_runs(pks[:limit], details=False)
    return SearchPage(runs, query, sort, limit, offset, has_more=len(pks) > limit)


def search_pks(conn: Connection, query: str, *, sort: str | None = None, limit: int = 20,
               offset: int = 0, policy: Policy = DEFAULT_POLICY) -> list[int]:
    """Integer keys of the matching runs, in result order. ``policy`` tunes how the plan is
    chosen (see ``registry.query._plan``); every policy gives the same keys."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
    parsed(query)  # a malformed query is reported before a malformed sort
    return find(conn, query, parse_sort(sort), limit, offset, policy)


def count(conn: Connection, query: str) -> int:
    """How many runs match ``query``."""
    stmt = select(func.count()).select_from(run)
    condition = where(conn, query)
    return conn.execute(stmt if condition is None else stmt.where(condition)).scalar_one()


def count_up_to(store: Any, query: str, cap: int) -> tuple[int, bool]:
    """How many runs match ``query``, counting no further than ``cap``: (the count, whether
    counting stopped at ``cap``). Bounded work, however many runs match."""
    rows = select(literal(1)).select_from(run)
    with store.reading() as conn:
        condition = where(conn, query)
        if condition is not None:
            rows = rows.where(condition)
        found = conn.execute(select(func.count()).select_from(rows.limit(cap + 1).subquery())
                             ).scalar_one()
    return min(found, cap), found > cap


def where(conn: Connection, query: str) -> ColumnElement[bool] | None:
    """The SQL condition on ``run`` for ``query`` (None for an empty query), to combine with
    other conditions, such as a dashboard's project filter."""
    return condition(query, conn.dialect.name, Shape())
