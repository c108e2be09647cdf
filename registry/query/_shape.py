"""How a parsed query becomes one SQL condition on ``run``: which list drives, in what order
the rest is checked.

A param, metric, tag or data comparison reads its child table through the (key, value)
index: ``run.pk IN (SELECT run_pk ...)``. In an and-group only one such list drives the
query; the others become ``EXISTS`` probes on the child's (run_pk, key) primary key, because
SQLite builds every ``IN`` list in full (a 50,000-row list for ``params.lr < 1e-3`` costs
200 ms; a probe per candidate run costs microseconds). Which one drives is the ``Shape``'s
choice (``_plan`` makes it from counts); by default the free text if any, else the
likeliest-selective comparison. A walking shape lets nothing drive, so the database walks the
sort order's index and checks each run: comparisons probe, and free text is a list written
``run.pk + 0 IN (...)``, built once but unusable as a driver. Attributes are conditions on
``run``'s own columns, which the database may drive from by their indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import BinaryExpression, ColumnElement, and_, literal_column, not_, or_

from registry.query._compile import comparison
from registry.query._fields import resolve
from registry.query._parser import And, Compare, Node, Not, Or, Text, parse
from registry.store.schema import run
from registry.store.textindex import matching as text_match

__all__ = ["Shape", "compile_query", "operands", "parsed"]


@dataclass(frozen=True)
class Shape:
    """How the top-level and-group (see ``operands``) becomes SQL.

    ``walk``: nothing drives. Otherwise ``driver`` is the position of the operand that drives
    (None: the free text if any, else the likeliest-selective comparison); free text that
    does not drive is a ``+ 0`` list. ``order``: the operands' positions in the order the
    database should check them (None: as written)."""

    walk: bool = False
    driver: int | None = None
    order: tuple[int, ...] | None = None


@dataclass(frozen=True)
class _Context:
    query: str
    dialect: str
    walk: bool


@lru_cache(maxsize=512)
def parsed(query: str) -> Node | None:
    """The tree of ``query`` (cached: trees are immutable)."""
    return parse(query)


def operands(node: Node | None) -> tuple[Node, ...]:
    """The conditions of the top-level and-group (a single condition is a group of one)."""
    if node is None:
        return ()
    return node.operands if isinstance(node, And) else (node,)


def compile_query(node: Node | None, query: str, dialect: str,
                  shape: Shape = Shape()) -> ColumnElement[bool] | None:
    """The condition for ``node`` (None: no condition), shaped by ``shape``. Conditions never
    evaluate to NULL, so ``not`` is the exact complement."""
    if node is None:
        return None
    ctx = _Context(query, dialect, shape.walk)
    nodes = operands(node)
    if shape.walk:
        driver = None
    elif shape.driver is not None:
        driver = nodes[shape.driver]
    else:
        driver = _default_driver(nodes, ctx)
    words = " ".join(n.phrase for n in nodes if isinstance(n, Text))
    first_text = next((n for n in nodes if isinstance(n, Text)), None)
    parts = {}  # compiled in the query's order, so its first mistake is the one reported
    for i, n in enumerate(nodes):
        if n is first_text:
            parts[i] = _text_lookup(ctx, words, drive=isinstance(driver, Text))
        elif not isinstance(n, Text):
            parts[i] = _node(n, ctx, probe=n is not driver)
    ordered = [parts[i] for i in shape.order or range(len(nodes)) if i in parts]
    return ordered[0] if len(ordered) == 1 else and_(*ordered)


def _node(node: Node, ctx: _Context, probe: bool = False) -> ColumnElement[bool]:
    if isinstance(node, Text):
        return _text_lookup(ctx, node.phrase, drive=not ctx.walk)
    if isinstance(node, Not):
        return not_(_node(node.operand, ctx))
    if isinstance(node, Or):
        return or_(*(_node(n, ctx, probe=ctx.walk) for n in node.operands))
    if isinstance(node, And):
        return _and(node, ctx)
    return comparison(node, ctx.query, ctx.dialect, probe or ctx.walk)


def _and(node: And, ctx: _Context) -> ColumnElement[bool]:
    """One driving list per and-group (all its words in one text lookup), probes for the rest."""
    words = " ".join(n.phrase for n in node.operands if isinstance(n, Text))
    driver = _default_driver(node.operands, ctx)
    parts = [_node(n, ctx, probe=n is not driver) for n in node.operands
             if not isinstance(n, Text)]
    if words:
        parts.insert(0, _text_lookup(ctx, words, drive=not ctx.walk))
    return and_(*parts)


def _default_driver(nodes: tuple[Node, ...], ctx: _Context) -> Node | None:
    """The free text if any, else the child-table comparison likeliest to match fewest runs
    (equality before ranges); None when walking."""
    if ctx.walk:
        return None
    text = next((n for n in nodes if isinstance(n, Text)), None)
    if text is not None:
        return text
    rank = {"=": 0, "<": 1, "<=": 1, ">": 1, ">=": 1, "~": 2}
    candidates = [n for n in nodes if isinstance(n, Compare) and n.op in rank
                  and resolve(n.field, n.field_pos, ctx.query).kind != "attribute"]
    return min(candidates, key=lambda n: rank[n.op], default=None)


def _text_lookup(ctx: _Context, phrase: str, *, drive: bool) -> ColumnElement[bool]:
    """``run.pk IN (text lookup)``; as ``run.pk + 0 IN (...)`` when it must not drive."""
    condition = text_match(ctx.dialect, phrase)
    if drive or not isinstance(condition, BinaryExpression):  # true() for an empty phrase
        return condition
    return (run.c.pk + literal_column("0")).in_(condition.right)
