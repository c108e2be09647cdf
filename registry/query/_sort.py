"""Sort specs: ``"val_acc"``, ``"-val_acc"``, ``"val_acc desc"``, ``"metrics.loss.min"``,
``"params.lr"``, ``"started"``... Runs without a value go last either way; ties go newest
first (``start_time`` descending, then ``pk`` descending)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, UnaryExpression, and_

from registry.errors import QueryError
from registry.query._fields import ATTRIBUTES, Field, resolve
from registry.query._lexer import check_characters
from registry.store.schema import metric_summary, param, project, run, tag

__all__ = ["DEFAULT_SORT", "NEWEST_FIRST", "Sort", "order", "parse_sort"]

DEFAULT_SORT = "-started"
NEWEST_FIRST = (run.c.start_time.desc(), run.c.pk.desc())
_SPEC = re.compile(r"\s*([+-]?)\s*(\S+)(?:\s+(\S+))?\s*")
_SORTABLE = ("attribute", "metric", "param", "tag")


@dataclass(frozen=True)
class Sort:
    """A checked sort spec. ``walk`` names the index whose order it is, if any: "started"
    (``run(start_time)``) or "metric" (``metric_summary(key, last, run_pk)``)."""

    field: Field
    descending: bool

    @property
    def walk(self) -> str | None:
        if self.field == Field("attribute", "started"):
            return "started"
        if self.field.kind == "metric" and self.field.part == "last":
            return "metric"
        return None


@lru_cache(maxsize=256)
def parse_sort(sort: str | None) -> Sort:
    """The checked ``sort`` (None or blank: newest first); QueryError when malformed."""
    spec = DEFAULT_SORT if sort is None or not sort.strip() else sort
    check_characters(spec)
    name, pos, descending = _split(spec)
    field = resolve(name, pos, spec)
    if field.kind not in _SORTABLE:
        raise QueryError(spec, pos, "a field to sort by: an attribute, a metric, params.KEY or "
                                    "tags.KEY")
    return Sort(field, descending)


def order(stmt: Select, sort: Sort) -> Select:
    """``stmt`` (a select from ``run``) joined to what ``sort`` needs, and ordered by it: the
    whole match set sorted, which is what a query does when it does not walk an index."""
    field = sort.field
    nullable = True
    if field.kind == "attribute":
        attr = ATTRIBUTES[field.key]
        if field.key == "project":
            stmt = stmt.join(project, project.c.id == run.c.project_id)
        keys: list[ColumnElement] = [attr.column]
        nullable = attr.nullable
    elif field.kind == "metric":
        summary = metric_summary.alias("sort_metric")
        stmt = stmt.outerjoin(summary, and_(summary.c.run_pk == run.c.pk,
                                            summary.c.key == field.key))
        keys = [summary.c[field.part]]
    elif field.kind == "param":
        value = param.alias("sort_param")
        stmt = stmt.outerjoin(value, and_(value.c.run_pk == run.c.pk, value.c.key == field.key))
        keys = [value.c.value_num, value.c.value_text]
    else:
        value = tag.alias("sort_tag")
        stmt = stmt.outerjoin(value, and_(value.c.run_pk == run.c.pk, value.c.key == field.key))
        keys = [value.c.value]
    ordered = [direction(k, sort.descending, nullable) for k in keys]
    ties = NEWEST_FIRST[1:] if keys[0] is run.c.start_time else NEWEST_FIRST
    return stmt.order_by(*ordered, *ties)


def direction(key: ColumnElement, descending: bool, nullable: bool = False) -> UnaryExpression:
    ordered = key.desc() if descending else key.asc()
    return ordered.nulls_last() if nullable else ordered


def _split(spec: str) -> tuple[str, int, bool]:
    """(field name, its position, descending?) of a sort spec."""
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise QueryError(spec, 0, "a field to sort by, optionally with '-' or ' desc'")
    sign, name, word = match.group(1), match.group(2), match.group(3)
    if word is not None and word.lower() not in ("asc", "desc"):
        raise QueryError(spec, match.start(3), "'asc' or 'desc' after the sort field")
    if sign and word is not None:
        raise QueryError(spec, match.start(3), "either a '-' / '+' sign or 'asc' / 'desc'")
    descending = sign == "-" or (word is not None and word.lower() == "desc")
    return name, match.start(2), descending
