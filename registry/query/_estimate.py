"""Cheap counts behind the plan: how many runs each top-level condition matches, capped.

Each countable condition is counted through an index alone, and only up to a cap
(``SELECT count(*) FROM (SELECT 1 ... LIMIT :cap)``), so one statement answers for all of
them in about a millisecond whatever the store's size. Countable: free text (the text index),
numeric param comparisons, metric ``last`` comparisons, tag comparisons, data hashes and paths
(``run_dataset``'s dataset index; the role is ignored, which can only count more), and
``owner``, ``status``, ``project`` and ``family`` equalities (their ``run`` indexes); an
and-group counts as its smallest part, an or-group as the sum of its parts. Anything else
(``!=``, ``not``, ``~``, text params, other attributes) has no cheap count: None.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, Select, func, literal_column, select

from registry.entities import RunStatus
from registry.errors import QueryError
from registry.query import _values
from registry.query._compile import _Context, _prefix, selection
from registry.query._fields import resolve
from registry.query._parser import And, Compare, Node, Or, Text
from registry.query._shape import operands, parsed
from registry.store.schema import dataset, run, run_dataset
from registry.store.textindex import matching

__all__ = ["Counts", "count_operands"]

_INDEXED = ("owner", "status", "project", "family")
_NUMERIC = ("=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Counts:
    """``runs``: the store's size (its largest run key); ``operands``: per top-level operand,
    how many runs it matches, capped (None: no cheap count)."""

    runs: int
    operands: tuple[int | None, ...]


def count_operands(conn: Connection, query: str, cap: int) -> Counts:
    """Count what each top-level operand of ``query`` matches, up to ``cap`` each."""
    statement, trees = _statement(query, conn.dialect.name, cap)
    if not any(t is not None for t in trees):
        return Counts(0, trees)
    row = conn.execute(statement).one()
    return Counts(row[0] or 0, tuple(_evaluate(t, row) for t in trees))


@lru_cache(maxsize=256)
def _statement(query: str, dialect: str, cap: int) -> tuple[Select, tuple]:
    """One select: the largest run key, then each countable leaf's capped count; and per
    operand a tree over those columns: an int column, ("min" | "sum", [trees]) or None."""
    columns = [select(func.max(run.c.pk)).scalar_subquery()]

    def leaf(rows: Select) -> int:
        rows = rows.with_only_columns(literal_column("1"), maintain_column_froms=True).limit(cap)
        columns.append(select(func.count()).select_from(rows.subquery()).scalar_subquery())
        return len(columns) - 1

    def tree(node: Node):
        if isinstance(node, Text):
            lookup = matching(dialect, node.phrase)  # run.pk IN (SELECT ... text index)
            return leaf(select(lookup.right.element.subquery())) if hasattr(
                lookup, "right") else None
        if isinstance(node, Compare):
            try:
                rows = _rows(node, query, dialect)
            except QueryError:  # compiling the query reports it
                return None
            return None if rows is None else leaf(rows)
        if isinstance(node, And | Or):
            kids = [tree(n) for n in node.operands]
            if isinstance(node, Or):
                return None if None in kids else ("sum", kids)
            kids = [k for k in kids if k is not None]
            return ("min", kids) if kids else None
        return None

    nodes = operands(parsed(query))
    words = " ".join(n.phrase for n in nodes if isinstance(n, Text))
    text = tree(Text(words, 0)) if words else None
    trees = tuple(text if isinstance(n, Text) else tree(n) for n in nodes)
    return select(*columns), trees


def _rows(node: Compare, query: str, dialect: str) -> Select | None:
    """The run keys ``node`` selects through an index, or None when no index serves it."""
    field = resolve(node.field, node.field_pos, query)
    value = node.value
    if node.op not in _NUMERIC:
        return None
    if field.kind == "attribute":
        if field.key not in _INDEXED or node.op != "=":
            return None
        if field.key == "status":  # running and crashed runs are both stored as RUNNING
            wanted = _values.status(value, query)
            stored = RunStatus.RUNNING if wanted == RunStatus.CRASHED else wanted
            return select(run.c.pk).where(run.c.status == stored)
        return select(run.c.pk).where(selection(node, query, dialect))
    if field.kind == "param" and value.number is None:
        return None  # text params have no (key, value_text) index
    if field.kind == "metric" and (field.part != "last" or value.number is None):
        return None
    if field.kind != "data":
        return selection(node, query, dialect)
    if node.op != "=" or field.part == "pushed":  # pushed: no index; few values
        return None
    if field.part == "hash":
        condition = _prefix(dataset.c.hash, node.op, node, _Context(query, dialect))
    else:
        condition = dataset.c.path == value.text
    return select(run_dataset.c.run_pk).where(
        run_dataset.c.dataset_id.in_(select(dataset.c.id).where(condition)))


def _evaluate(tree, row) -> int | None:
    if tree is None or isinstance(tree, int):
        return None if tree is None else row[tree]
    how, kids = tree
    values = [_evaluate(k, row) for k in kids]
    return min(values) if how == "min" else sum(values)
