"""Compile one comparison of a parsed query into SQL, with every value bound.

A param, metric, tag or data comparison selects run keys from its child table through the
(key, value) index (``SELECT run_pk ...``), used as a list (``run.pk IN (...)``) or as an
``EXISTS`` probe per run; ``_shape`` decides which. Attributes are conditions on ``run``'s own
columns. Conditions never evaluate to NULL, so ``not`` is the exact complement (``name != x``
includes runs without a name; ``val_acc != 1`` includes runs that never logged val_acc).
Nothing depends on the clock at compile time (``crashed`` binds the time when the statement
runs), so compiled conditions are cached and reused.
"""

from __future__ import annotations

import operator
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Double, Select, and_, bindparam, literal, not_, select

from registry.entities import RunStatus
from registry.errors import QueryError
from registry.query import _values
from registry.query._fields import ATTRIBUTES, Field, resolve
from registry.query._parser import Compare
from registry.store.schema import dataset, metric_summary, param, project, run, run_dataset, tag

__all__ = ["comparison", "selection"]

_OPS = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_NONFINITE = {"nan": "nan", "inf": "inf", "+inf": "inf", "infinity": "inf", "-inf": "-inf",
              "-infinity": "-inf"}
_ALNUM = re.compile(r"[0-9a-z]+")


@dataclass(frozen=True)
class _Context:
    query: str
    dialect: str

    def error(self, pos: int, expected: str) -> QueryError:
        return QueryError(self.query, pos, expected)


@lru_cache(maxsize=1024)
def selection(node: Compare, query: str, dialect: str) -> Select | ColumnElement[bool]:
    """What ``node`` selects ('!=' read as '='): the run keys of a child table's rows
    (``SELECT run_pk ...`` through the child's (key, value) index), or a condition on
    ``run``'s own columns. Cached per node: one query compiles in several shapes."""
    field = resolve(node.field, node.field_pos, query)
    op = "=" if node.op == "!=" else node.op
    return _BUILDERS[field.kind](field, op, node, _Context(query, dialect))


@lru_cache(maxsize=1024)
def comparison(node: Compare, query: str, dialect: str, probe: bool) -> ColumnElement[bool]:
    """The condition on ``run`` for ``node``: a child table's run keys as a list that can
    drive (``run.pk IN (...)``) or, with ``probe``, as an ``EXISTS`` probe per run."""
    condition = selection(node, query, dialect)
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
    now = bindparam(None, callable_=time.time, type_=Double(), unique=True)  # when it runs
    crashed = and_(
        run.c.status == RunStatus.RUNNING, run.c.heartbeat_time.is_not(None),
        run.c.heartbeat_interval.is_not(None), run.c.heartbeat_interval > 0,
        run.c.heartbeat_time < now - run.c.heartbeat_interval * RunStatus.MISSED_BEATS)
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
    if field.part == "pushed":
        condition = _pushed(op, node, ctx)
    elif field.part == "hash":
        condition = _prefix(dataset.c.hash, op, node, ctx)
    else:
        condition = _text(dataset.c.path, op, node.value.text)
    used = select(run_dataset.c.run_pk).join(dataset, dataset.c.id == run_dataset.c.dataset_id)
    if field.key:
        used = used.where(run_dataset.c.role == field.key)
    return used.where(condition)


def _pushed(op: str, node: Compare, ctx: _Context) -> ColumnElement[bool]:
    """``data.pushed = true | false | unknown`` (unknown: no remote was asked, or none
    answered)."""
    if op != "=":
        raise ctx.error(node.op_pos, "'=' or '!=' after 'pushed' (true, false or unknown)")
    if node.value.text.lower() == "unknown":
        return run_dataset.c.pushed.is_(None)
    try:
        return run_dataset.c.pushed == _values.boolean(node.value, ctx.query)
    except QueryError:
        raise ctx.error(node.value.pos, "true, false or unknown") from None


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
