"""Compile a parsed query into one SQL condition on ``run``, with every value bound.

A param, metric, tag or data comparison reads its child table through the (key, value)
index: ``run.pk IN (SELECT run_pk ...)``. In an and-group only one such list drives the
query (the free text if any, else the likeliest-selective comparison); the others become
``EXISTS`` probes on the child's (run_pk, key) primary key, because SQLite builds every
``IN`` list in full (a 50,000-row list for ``params.lr < 1e-3`` costs 200 ms; a probe per
candidate run costs microseconds). Attributes are conditions on ``run``'s own columns.
Conditions never evaluate to NULL, so ``not`` is the exact complement (``name != x``
includes runs without a name; ``val_acc != 1`` includes runs that never logged val_acc).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Double, Select, and_, literal, not_, or_, select

from registry.entities import RunStatus
from registry.errors import QueryError
from registry.query import _values
from registry.query._fields import ATTRIBUTES, Field, resolve
from registry.query._parser import And, Compare, Node, Not, Or, Text
from registry.store._textindex import matching as text_match
from registry.store.schema import dataset, metric_summary, param, project, run, run_dataset, tag

__all__ = ["compile_query"]

_OPS = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_NONFINITE = {"nan": "nan", "inf": "inf", "+inf": "inf", "infinity": "inf", "-inf": "-inf",
              "-infinity": "-inf"}
_ALNUM = re.compile(r"[0-9a-z]+")


@dataclass(frozen=True)
class _Context:
    query: str
    dialect: str
    now: float

    def error(self, pos: int, expected: str) -> QueryError:
        return QueryError(self.query, pos, expected)


def compile_query(node: Node | None, query: str, dialect: str,
                  now: float) -> ColumnElement[bool] | None:
    """The condition for ``node`` (None: no condition); ``now`` decides which runs crashed."""
    return None if node is None else _node(node, _Context(query, dialect, now))


def _node(node: Node, ctx: _Context, probe: bool = False) -> ColumnElement[bool]:
    if isinstance(node, Text):
        return text_match(ctx.dialect, node.phrase)
    if isinstance(node, Not):
        return not_(_node(node.operand, ctx))
    if isinstance(node, Or):
        return or_(*(_node(n, ctx) for n in node.operands))
    if isinstance(node, And):
        return _and(node, ctx)
    return _compare(node, ctx, probe)


def _and(node: And, ctx: _Context) -> ColumnElement[bool]:
    """One driving list per and-group (all its words in one text lookup), probes for the rest."""
    words = " ".join(n.phrase for n in node.operands if isinstance(n, Text))
    driver = None if words else _driver(node.operands, ctx)
    parts = [_node(n, ctx, probe=n is not driver) for n in node.operands
             if not isinstance(n, Text)]
    return and_(text_match(ctx.dialect, words), *parts) if words else and_(*parts)


def _driver(nodes: tuple[Node, ...], ctx: _Context) -> Node | None:
    """The child-table comparison likeliest to match fewest runs: equality before ranges."""
    rank = {"=": 0, "<": 1, "<=": 1, ">": 1, ">=": 1, "~": 2}
    candidates = [n for n in nodes if isinstance(n, Compare) and n.op in rank
                  and resolve(n.field, n.field_pos, ctx.query).kind != "attribute"]
    return min(candidates, key=lambda n: rank[n.op], default=None)


def _compare(node: Compare, ctx: _Context, probe: bool) -> ColumnElement[bool]:
    field = resolve(node.field, node.field_pos, ctx.query)
    op = "=" if node.op == "!=" else node.op
    condition = _BUILDERS[field.kind](field, op, node, ctx)
    if isinstance(condition, Select):  # run keys from a child table
        key = condition.selected_columns[0]
        condition = condition.where(key == run.c.pk).exists() if probe else run.c.pk.in_(
            condition)
    return not_(condition) if node.op == "!=" else condition


def _attribute(field: Field, op: str, node: Compare, ctx: _Context) -> ColumnElement[bool]:
    attr = ATTRIBUTES[field.key]
    column, value = attr.column, node.value
    if attr.kind == "status":
        return _status(op, node, ctx)
    if attr.kind == "text":
        condition = _text(column, op, value.text)
    elif attr.kind == "prefix":
        condition = _prefix(column, op, node, ctx)
    elif attr.kind == "bool":
        if op != "=":
            raise ctx.error(node.op_pos, f"'=' or '!=' after {field.key!r} (true or false)")
        condition = column == _values.boolean(value, ctx.query)
    else:
        _no_contains(op, node, ctx, field.key)
        if attr.kind == "seconds":
            condition = _OPS[op](column, _number(_values.seconds(value, ctx.query)))
        else:
            condition = _time(column, op, _values.time_span(value, ctx.query))
    if attr.nullable:
        condition = and_(column.is_not(None), condition)
    if field.key == "project":
        condition = run.c.project_id.in_(select(project.c.id).where(condition))
    return condition


def _status(op: str, node: Compare, ctx: _Context) -> ColumnElement[bool]:
    if op != "=":
        raise ctx.error(node.op_pos, "'=' or '!=' after 'status'")
    wanted = _values.status(node.value, ctx.query)
    crashed = and_(
        run.c.status == RunStatus.RUNNING, run.c.heartbeat_time.is_not(None),
        run.c.heartbeat_interval.is_not(None), run.c.heartbeat_interval > 0,
        run.c.heartbeat_time < ctx.now - run.c.heartbeat_interval * RunStatus.MISSED_BEATS)
    if wanted == RunStatus.CRASHED:
        return crashed
    if wanted == RunStatus.RUNNING:
        return and_(run.c.status == wanted, not_(crashed))
    return run.c.status == wanted


def _param(field: Field, op: str, node: Compare, ctx: _Context) -> Select:
    value = node.value
    if value.number is None:
        condition = _text(param.c.value_text, op, value.text)
    elif op == "~":
        raise ctx.error(value.pos, "text after '~' (quote a number to search for it as text)")
    else:
        condition = _OPS[op](param.c.value_num, _number(value.number))
    return select(param.c.run_pk).where(param.c.key == field.key, condition)


def _metric(field: Field, op: str, node: Compare, ctx: _Context) -> Select:
    value = node.value
    nonfinite = None if value.number is not None else _NONFINITE.get(value.text.lower())
    if field.bare and (op == "~" or (value.number is None and nonfinite is None)):
        raise ctx.error(node.field_pos, f"a known attribute ({', '.join(ATTRIBUTES)}), or a "
                                        f"metric compared with a number")
    _no_contains(op, node, ctx, f"metric {field.key!r}")
    if value.number is not None:
        condition = _OPS[op](metric_summary.c[field.part], _number(value.number))
    elif nonfinite is not None and op == "=" and field.part == "last":
        condition = metric_summary.c.last_nonfinite == nonfinite
    else:
        raise ctx.error(value.pos, f"a number after '{node.op}' (metric {field.key!r} holds "
                                   "numbers; nan and inf only with '=' or '!=')")
    return select(metric_summary.c.run_pk).where(metric_summary.c.key == field.key, condition)


def _tag(field: Field, op: str, node: Compare, ctx: _Context) -> Select:
    condition = _text(tag.c.value, op, node.value.text)
    return select(tag.c.run_pk).where(tag.c.key == field.key, condition)


def _data(field: Field, op: str, node: Compare, ctx: _Context) -> Select:
    if field.part == "hash":
        condition = _prefix(dataset.c.hash, op, node, ctx)
    else:
        condition = _text(dataset.c.path, op, node.value.text)
    used = select(run_dataset.c.run_pk).join(dataset, dataset.c.id == run_dataset.c.dataset_id)
    if field.key:
        used = used.where(run_dataset.c.role == field.key)
    return used.where(condition)


def _text(column: ColumnElement, op: str, text: str) -> ColumnElement[bool]:
    if op == "~":
        return column.icontains(text, autoescape=True)
    return _OPS[op](column, text)


def _prefix(column: ColumnElement, op: str, node: Compare, ctx: _Context) -> ColumnElement[bool]:
    """Ids and hashes: ``=`` means "starts with" (lower-case hex), ``~`` means "contains"."""
    text = node.value.text
    if op == "~":
        return column.icontains(text, autoescape=True)
    if op != "=":
        raise ctx.error(node.op_pos, "'=', '!=' or '~' (ids and hashes match by prefix)")
    prefix = text.lower()
    condition = column.startswith(prefix, autoescape=True)
    if _ALNUM.fullmatch(prefix):
        # A range the (hash, ...) indexes serve on both dialects; LIKE alone does not.
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        condition = and_(column >= prefix, column < after, condition)
    return condition


def _time(column: ColumnElement, op: str, span: tuple[float, float]) -> ColumnElement[bool]:
    """Compare with an instant, or with a whole day (``started <= 2026-11-01`` includes it)."""
    start, end = span
    if start == end:
        return _OPS[op](column, _number(start))
    if op == "=":
        return and_(column >= _number(start), column < _number(end))
    # A day: before it (<), up to its end (<=), after it (>), from its start (>=).
    bound = {"<": start, "<=": end, ">": end, ">=": start}[op]
    return _OPS[{"<=": "<", ">": ">="}.get(op, op)](column, _number(bound))


def _number(value: float) -> ColumnElement[float]:
    """A float bind, whatever the column: PostgreSQL would cast it to BIGINT for ``count``,
    rounding 1.5 to 2 and failing on 1e30."""
    return literal(value, Double())


def _no_contains(op: str, node: Compare, ctx: _Context, what: str) -> None:
    if op == "~":
        raise ctx.error(node.op_pos, f"a comparison (=, !=, <, <=, >, >=): '~' searches text "
                                     f"and {what} is a number")


_BUILDERS = {"attribute": _attribute, "param": _param, "metric": _metric, "tag": _tag,
             "data": _data}
