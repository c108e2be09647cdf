"""Choose how a search reads the store: walk the sort order, or drive from the smallest list.

A first page sorted newest first (or by a metric's last value) can *walk* an index in that
order (``run(start_time)``, ``metric_summary(key, last, run_pk)``) and check each run against
the query until the page is full: cheap when many runs match, since the walk stops early, but
a walk reads the whole index when almost nothing matches. *Driving* starts from the smallest
condition's list of runs, checks each and sorts them all: its cost grows with that list, not
with how many runs match. On SQLite (no planner statistics: Cairn never runs ANALYZE) the
choice is made here from cheap capped counts (``_estimate``), see ``_walk_bound``. A walk
that may cost more than the drive is bounded (a range on the sort column, whose end one
index-only query finds); a bounded walk that does not fill the page gives way to the drive,
so a wrong guess costs at most about twice the drive. Conditions are checked cheapest and most
selective first. Runs without the sort metric come last: when the metric walk runs out, a
second query lists them newest first. PostgreSQL has statistics, so nothing is counted there:
the conditions keep ``_shape``'s default form, which its planner rearranges freely, and only
the statement follows the sort (a metric sort joins from ``metric_summary``, so the planner
may walk its index instead of sorting every match).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, Connection, Select, not_, select

from registry.errors import QueryError
from registry.query._estimate import Counts, count_operands
from registry.query._fields import Field, resolve
from registry.query._parser import Compare, Node, Text
from registry.query._shape import Shape, compile_query, operands, parsed
from registry.query._sort import NEWEST_FIRST, Sort, direction, order
from registry.store.schema import metric_summary, run

__all__ = ["DEFAULT_POLICY", "Policy", "condition", "find"]


@dataclass(frozen=True)
class Policy:
    """How to choose; costs are per run, in units of one run walked newest first whose first
    check is a probe. ``drive_cost``: a run reached from a driving list (row read, checked,
    sorted; 0: always drive when some condition can, inf: always walk, unbounded).
    ``list_walk_cost``: a run walked newest first when the first check is the free text's
    list, held in memory. ``metric_walk_cost``: a run walked in a metric's order (its row is
    read in no useful order). ``cap``: counts stop there. ``walk_bound``: walk at most this
    many runs, then drive (None: computed). ``estimate``: count first (None: on SQLite)."""

    drive_cost: float = 4.0
    list_walk_cost: float = 0.25
    metric_walk_cost: float = 2.0
    cap: int = 5000
    walk_bound: int | None = None
    estimate: bool | None = None


DEFAULT_POLICY = Policy()
NEWEST = Sort(Field("attribute", "started"), descending=True)


def find(conn: Connection, query: str, sort: Sort, limit: int, offset: int,
         policy: Policy = DEFAULT_POLICY) -> list[int]:
    """Keys of the runs matching ``query``, in ``sort`` order, ``offset`` and ``limit``."""
    dialect = conn.dialect.name
    if limit == 0:
        condition(query, dialect, Shape())  # a malformed query still fails
        return []
    nodes = operands(parsed(query))
    estimating = policy.estimate if policy.estimate is not None else dialect == "sqlite"
    counts = None
    if estimating and nodes and (sort.walk or len(nodes) > 1):
        counts = count_operands(conn, query, policy.cap)
    shapes = (_shape(nodes, counts, query, walk=False), _shape(nodes, counts, query, walk=True)
              ) if estimating else (Shape(), Shape())
    text = any(isinstance(n, Text) for n in nodes)
    return _Search(conn, query, counts, policy, *shapes, text).page(sort, limit, offset)


@dataclass(frozen=True)
class _Search:
    conn: Connection
    query: str
    counts: Counts | None
    policy: Policy
    drive: Shape
    walk: Shape
    text: bool  # free text, which a walk checks first, from memory

    def page(self, sort: Sort, limit: int, offset: int,
             extra: tuple[ColumnElement[bool], ...] = ()) -> list[int]:
        """The page (of the runs that also meet ``extra``): walking when it promises to cost
        less than driving, else (or when a bounded walk runs out) driving."""
        if sort.walk:
            policy = self.policy
            step = policy.metric_walk_cost if sort.walk == "metric" else (
                policy.list_walk_cost if self.text else 1.0)
            bound = _walk_bound(self.counts, offset + limit, policy, step)
            if bound is not False:
                walk = self._metric if sort.walk == "metric" else self._started
                pks = walk(sort, limit, offset, extra, bound)
                if pks is not None:
                    return pks
        stmt = self._where(select(run.c.pk).where(*extra), self.drive)
        return self._pks(order(stmt, sort).limit(limit).offset(offset))

    def _started(self, sort: Sort, limit: int, offset: int,
                 extra: tuple[ColumnElement[bool], ...], bound: int | None) -> list[int] | None:
        """The page by walking ``run(start_time)``; None when a bounded walk ran out."""
        stmt = self._where(select(run.c.pk).where(*extra), self.walk)
        cutoff = self._cutoff(run.c.start_time, sort.descending, bound)
        if cutoff is not None:
            stmt = stmt.where(_within(run.c.start_time, sort.descending, cutoff))
        pks = self._pks(order(stmt, sort).limit(limit).offset(offset))
        return pks if cutoff is None or len(pks) == limit else None

    def _metric(self, sort: Sort, limit: int, offset: int,
                extra: tuple[ColumnElement[bool], ...], bound: int | None) -> list[int] | None:
        """The page by walking ``metric_summary(key, last, run_pk)``, then the runs without
        a value newest first; None when a bounded walk ran out."""
        summary = metric_summary.alias("sort_metric")
        valued = (summary.c.key == sort.field.key, summary.c.last.is_not(None))
        cutoff = self._cutoff(metric_summary.c["last"], sort.descending, bound,
                              metric_summary.c.key == sort.field.key)
        stmt = select(run.c.pk).select_from(summary.join(run, run.c.pk == summary.c.run_pk))
        stmt = self._where(stmt.where(*valued, *extra), self.walk)
        if cutoff is not None:
            stmt = stmt.where(_within(summary.c["last"], sort.descending, cutoff))
        want = offset + limit
        pks = self._pks(stmt.order_by(direction(summary.c["last"], sort.descending),
                                      *NEWEST_FIRST).limit(want))
        if len(pks) == want:
            return pks[offset:]
        if cutoff is not None:
            return None
        # Every run with a value is in ``pks``: the rest of the page has none, newest first.
        lacking = not_(select(summary.c.run_pk).where(summary.c.run_pk == run.c.pk, *valued)
                       .exists())
        rest = limit - len(pks[offset:])
        return pks[offset:] + self.page(NEWEST, rest, max(0, offset - len(pks)),
                                        (*extra, lacking))

    def _cutoff(self, column: ColumnElement, descending: bool, bound: int | None,
                *where: ColumnElement[bool]) -> float | None:
        """The sort value of the ``bound``-th run in walking order (None: no bound)."""
        if bound is None:
            return None
        stmt = select(column).where(column.is_not(None), *where).order_by(
            direction(column, descending)).offset(max(bound, 1) - 1).limit(1)
        return self.conn.execute(stmt).scalar()

    def _where(self, stmt: Select, shape: Shape) -> Select:
        where = condition(self.query, self.conn.dialect.name, shape)
        return stmt if where is None else stmt.where(where)

    def _pks(self, stmt: Select) -> list[int]:
        return list(self.conn.execute(stmt).scalars())


def _walk_bound(counts: Counts | None, want: int, policy: Policy,
                step: float) -> int | bool | None:
    """How many runs a walk may read (None: all of them), or False: drive instead.

    The drive reads D runs (the smallest count) at ``drive_cost`` each. The walk reads about
    ``want * N / M`` runs at ``step`` each, M being the matches: N times the product of the
    exact counts' shares (capped counts are left out, so M is rather overestimated). It may
    go on as long as it costs less than the drive would, so a wrong guess costs at most about
    twice the drive."""
    known = [c for c in counts.operands if c is not None] if counts else []
    if not known:
        return policy.walk_bound  # nothing to drive from: walking is never worse
    runs, smallest = max(counts.runs, 1), min(known)
    matches = runs * math.prod(c / runs for c in known if c < policy.cap)
    walked = runs if matches <= want else want * runs / matches
    if walked * step >= policy.drive_cost * smallest:
        return False
    if policy.walk_bound is not None:
        return policy.walk_bound
    bound = policy.drive_cost * smallest / step
    # Past half the store, walking on costs less than stopping and driving (at most 2x).
    return math.ceil(bound) if 2 * bound < runs else None  # (NaN, inf: unbounded)


def _within(column: ColumnElement, descending: bool, cutoff: float) -> ColumnElement[bool]:
    return column >= cutoff if descending else column <= cutoff


def _shape(nodes: tuple[Node, ...], counts: Counts | None, query: str, walk: bool) -> Shape:
    """Walking, or driven by the smallest countable operand (equalities before free text
    before ranges when counts tie at the cap). The others are checked cheapest first: free
    text (a list, built once, held in memory), attributes (the run's own row), data probes
    (small tables), other probes; fewest runs first within each."""
    if counts is None:
        return Shape(walk=walk)
    sizes = counts.operands
    kinds = [_kind(n, query) for n in nodes]
    known = [(c, _TIES.get(kinds[i], 2), i) for i, c in enumerate(sizes) if c is not None]
    driver = min(known)[2] if known and not walk else None

    def rank(i: int) -> tuple:
        size = math.inf if sizes[i] is None else sizes[i]
        return (i != driver, _CHECKS.index(kinds[i].split(" ")[0]), size, i)

    return Shape(walk, driver, tuple(sorted(range(len(nodes)), key=rank)))


_CHECKS = ("text", "attribute", "data", "probe", "other")
_TIES = {"attribute =": 0, "data =": 0, "probe =": 0, "text": 1}  # else 2


def _kind(node: Node, query: str) -> str:
    """What checking ``node`` costs: text, attribute, data or probe (with "=" for an
    equality, whose list is likely short), or other (or, not)."""
    if isinstance(node, Text):
        return "text"
    if not isinstance(node, Compare):
        return "other"
    try:
        kind = resolve(node.field, node.field_pos, query).kind
    except QueryError:  # compiling the query reports it
        return "other"
    kind = kind if kind in ("attribute", "data") else "probe"
    return f"{kind} =" if node.op == "=" else kind


@lru_cache(maxsize=512)
def condition(query: str, dialect: str, shape: Shape) -> ColumnElement[bool] | None:
    """The compiled condition of ``query`` (cached: compiled conditions hold no values that
    change between runs)."""
    return compile_query(parsed(query), query, dialect, shape)
