"""Groups of runs that differ only in their seeds: the stored keys and the aggregates over them.

A run's group key is its fingerprint (:func:`registry._fingerprint.fingerprint`: code,
normalised params, data) computed with the seed params ignored too, after an 8-character tag
of the settings that made it (the seed params and the fingerprint's ignored params), so a key
made under other settings is seen as stale. The key is stored in ``run.group_key`` (written at
run start, backfilled by migration 0005 with the default settings); a run whose key is missing
or stale gets one computed from its stored rows here (:func:`rekey`). A group is the runs of
one project with one key. Keys are made here rather than in the knowledge layer because the
migration computes them too, and the store may not import a layer above it.

Statistics take a metric's summary ``last`` (non-finite values left out and counted), over
the runs of chosen statuses; the rest are counted by status.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)

from registry._fingerprint import fingerprint
from registry._params import ParamValue
from registry.store.schema import (
    RUN_STATUSES,
    dataset,
    metric_summary,
    param,
    project,
    run,
    run_dataset,
)

__all__ = ["Group", "Keying", "Member", "MetricStats", "code_of", "find", "groups_of",
           "key_of_run", "members", "project_name", "rekey", "summarise", "tally",
           "with_stats"]

TAG_LENGTH = 8
ID_LENGTH = 12  # the digest characters a group is shown by
_BATCH = 500


@dataclass(frozen=True)
class Keying:
    """How group keys are made. A seed param name matches a param of that name or one ending
    in ``.NAME`` (``seed`` matches ``train.seed``); ``ignore`` (the fingerprint's ignored
    params) matches exact names."""

    seed_params: tuple[str, ...] = ("seed",)
    ignore: tuple[str, ...] = ()

    @cached_property
    def tag(self) -> str:
        settings = {"v": 1, "seeds": sorted(set(self.seed_params)),
                    "ignore": sorted(set(self.ignore))}
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:TAG_LENGTH]

    def seeds_in(self, names: Iterable[str]) -> set[str]:
        """The seed params among ``names``."""
        return {k for k in names if any(k == s or k.endswith("." + s) for s in self.seed_params)}

    def key(self, code: Mapping[str, Any], params: Mapping[str, ParamValue],
            data: Iterable[tuple[str, str | None, str]]) -> str:
        """The group key of a run: its settings tag and fingerprint without the seeds."""
        ignored = {*self.ignore, *self.seeds_in(params)}
        return self.tag + fingerprint(code, params, data, ignored)

    def current(self) -> ColumnElement[bool]:
        """Keys made under these settings (hex follows the tag, and sorts below 'g')."""
        return (run.c.group_key >= self.tag) & (run.c.group_key < self.tag + "g")


@dataclass(frozen=True)
class MetricStats:
    """One metric's last values over a group's counted runs. ``std`` is the sample standard
    deviation (None below two values); ``nonfinite`` counts NaN/inf values left out,
    ``missing`` the counted runs that never logged the metric."""

    key: str
    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    nonfinite: int = 0
    missing: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "min": self.min,
                "max": self.max, "nonfinite": self.nonfinite, "missing": self.missing}


@dataclass(frozen=True)
class Group:
    """Runs of one project that differ only in their seeds. ``runs`` counts every member the
    query matched, ``n`` those counted in the statistics; ``left_out`` the rest by status."""

    key: str
    project: str
    runs: int
    n: int
    left_out: Mapping[str, int]
    metrics: Mapping[str, MetricStats]
    newest: float
    name: str | None = None  # the first member's name, alphabetically
    owners: tuple[str, ...] = ()  # only from groups_of: most runs first

    @property
    def id(self) -> str:
        """The short id ``cairn runs groups`` shows and ``compare --groups`` accepts."""
        return self.key[TAG_LENGTH:TAG_LENGTH + ID_LENGTH]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "project": self.project, "runs": self.runs,
                "n": self.n, "left_out": dict(self.left_out), "newest": self.newest,
                "name": self.name, "metrics": {k: m.to_dict() for k, m in self.metrics.items()}}


@dataclass(frozen=True)
class Member:
    """One run of a group with its value of one metric (``nonfinite``: 'nan', 'inf'...)."""

    run_id: str
    name: str | None
    owner: str
    status: str
    has_metric: bool
    value: float | None
    nonfinite: str | None


# -- keys -------------------------------------------------------------------------------------


def rekey(store: Any, keying: Keying, condition: ColumnElement[bool] | None = None
          ) -> dict[int, str]:
    """Give the runs matching ``condition`` whose key is missing or was made under other
    settings a key. Stored when the store is writable (and the run's fingerprint did not
    change meanwhile); returned, run key -> group key, when it is read-only."""
    stale = or_(run.c.group_key.is_(None), run.c.group_key < keying.tag,
                run.c.group_key >= keying.tag + "g")  # three seeks in the group-key index
    query = select(run.c.pk).where(stale if condition is None else and_(condition, stale))
    with store.reading() as conn:
        pks = list(conn.execute(query).scalars())
    unsaved: dict[int, str] = {}
    for start in range(0, len(pks), _BATCH):
        with store.reading() as conn:
            made = _keys(conn, pks[start:start + _BATCH], keying)
        if store.readonly:
            unsaved.update((pk, key) for pk, (key, _) in made.items())
            continue
        rows = [{"pk_": pk, "key_": key, "fp_": fp} for pk, (key, fp) in made.items()]
        with store.writing() as conn:
            conn.execute(update(run).where(run.c.pk == bindparam("pk_"),
                                           run.c.fingerprint.is_not_distinct_from(bindparam("fp_")))
                         .values(group_key=bindparam("key_")), rows)
    return unsaved


def _keys(conn: Connection, pks: Sequence[int], keying: Keying) -> dict[int, tuple[str, Any]]:
    """(group key, the fingerprint it was made beside) of each run, from its stored rows:
    code as ``start_run`` takes it, every param, every dataset it used."""
    params: dict[int, dict[str, ParamValue]] = defaultdict(dict)
    for pk, key, vtype, text, number in conn.execute(
            select(param.c.run_pk, param.c.key, param.c.vtype, param.c.value_text,
                   param.c.value_num).where(param.c.run_pk.in_(pks))):
        params[pk][key] = ParamValue(vtype, text, number)
    data: dict[int, list[tuple[str, str | None, str]]] = defaultdict(list)
    for pk, role, digest, path in conn.execute(
            select(run_dataset.c.run_pk, run_dataset.c.role, dataset.c.hash, dataset.c.path)
            .join(dataset, dataset.c.id == run_dataset.c.dataset_id)
            .where(run_dataset.c.run_pk.in_(pks))):
        data[pk].append((role, digest, path))
    rows = conn.execute(select(run.c.pk, run.c.git_commit, run.c.git_diff_sha256,
                               run.c.entry_point, run.c.fingerprint).where(run.c.pk.in_(pks)))
    return {pk: (keying.key(code_of(commit, diff, entry), params[pk], data[pk]), fp)
            for pk, commit, diff, entry, fp in rows}


def code_of(commit: str | None, diff: str | None, entry_point: str | None) -> dict[str, Any]:
    """The code part of a fingerprint, from a run's columns, as ``start_run`` builds it."""
    base = (entry_point or "").replace("\\", "/").rsplit("/", 1)[-1]
    return {"commit": commit, "diff_sha256": diff, "entry_point": base}


def key_of_run(store: Any, run_pk: int, extra: Mapping[int, str] | None = None
               ) -> tuple[int, str | None]:
    """(project id, group key) of a run."""
    with store.reading() as conn:
        project_id, key = conn.execute(select(run.c.project_id, run.c.group_key)
                                       .where(run.c.pk == run_pk)).one()
    return project_id, (extra or {}).get(run_pk, key)


def find(store: Any, keying: Keying, prefix: str, extra: Mapping[int, str] | None = None
         ) -> list[tuple[int, str]]:
    """(project id, key) of the groups whose shown id starts with ``prefix``."""
    low = keying.tag + prefix
    with store.reading() as conn:
        found = set(conn.execute(
            select(run.c.project_id, run.c.group_key).distinct()
            .where(run.c.group_key >= low, run.c.group_key < low + "g").limit(50)))
        if extra:
            wanted = [pk for pk, key in extra.items() if key.startswith(low)]
            for start in range(0, len(wanted), _BATCH):
                found.update((pid, extra[pk]) for pk, pid in conn.execute(
                    select(run.c.pk, run.c.project_id)
                    .where(run.c.pk.in_(wanted[start:start + _BATCH]))))
    return sorted(found)


# -- statistics -------------------------------------------------------------------------------


class _Acc:
    """Sums of one metric over a group, from SQL's partial aggregates and single values."""

    __slots__ = ("count", "high", "low", "nonfinite", "sq", "total")

    def __init__(self) -> None:
        self.count = self.nonfinite = 0
        self.total = self.sq = 0.0
        self.low = self.high = None

    def merge(self, count: int, total: float | None, sq: float | None, low: float | None,
              high: float | None, nonfinite: int) -> None:
        self.nonfinite += nonfinite or 0
        if not count:
            return
        self.count += count
        self.total += total
        self.sq += sq
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def stats(self, key: str, counted: int) -> MetricStats:
        n = self.count
        mean = self.total / n if n else None
        std = None
        if n >= 2:
            # Sums of squares: good to about 8 significant digits of the mean; compare_groups
            # recomputes from the values themselves.
            std = math.sqrt(max(0.0, (self.sq - self.total * mean) / (n - 1)))
        if mean is not None and std is not None and self.low == self.high:
            std = 0.0
        return MetricStats(key, n, mean, std, self.low, self.high, self.nonfinite,
                           max(0, counted - n - self.nonfinite))


def tally(store: Any, keying: Keying | None, *, condition: ColumnElement[bool] | None = None,
          statuses: Sequence[str] | None = ("FINISHED",), extra: Mapping[int, str] | None = None,
          metric: str | None = None) -> list[Group]:
    """The groups of the runs matching ``condition`` whose key ``keying`` made (any key when
    None), plus the runs of ``extra`` (keys computed but not stored): their members by status
    and newest start, and the statistics of ``metric`` if given (what sorting by it needs),
    without names. On SQLite, reads of the group-key index in its order (and of each run's
    summary of ``metric``), one row per group."""
    members: dict[tuple[int, str], list] = {}  # (project, key) -> [newest, *runs by status]
    key, pid = run.c.group_key, run.c.project_id
    where = _where(keying, condition)
    by_status = [func.sum(case((run.c.status == s, 1), else_=0)) for s in RUN_STATUSES]
    with store.reading() as conn:
        for k, p, newest, *counts in conn.execute(
                select(key, pid, func.max(run.c.start_time), *by_status).where(where)
                .group_by(key, pid)):
            members[p, k] = [newest, *counts]
        for pk, p, status, started in _extra_rows(conn, extra or {}, run.c.status,
                                                  run.c.start_time):
            entry = members.setdefault((p, extra[pk]), [started] + [0] * len(RUN_STATUSES))
            entry[0] = max(entry[0], started)
            entry[1 + RUN_STATUSES.index(status)] += 1
        sums: dict[tuple[int, str], dict[str, _Acc]] = {}
        if metric is not None:
            sums = {ident: {} for ident in members}
            _sql_stats(conn, sums, None, where, metric, statuses)
            _extra_stats(conn, sums, None, extra or {}, metric, statuses)
        names = dict(conn.execute(select(project.c.id, project.c.name)).all())
    left_out = [(i, s) for i, s in enumerate(RUN_STATUSES, 1)
                if statuses is not None and s not in statuses]
    found = []
    for (p, k), entry in members.items():
        runs = sum(entry[1:])
        left = {s: entry[i] for i, s in left_out if entry[i]}
        n = runs - sum(left.values())
        stats = {m: acc.stats(m, n) for m, acc in sums[p, k].items()} if sums else {}
        found.append(Group(k, names[p], runs, n, left, stats, entry[0]))
    return found


def _aggregates() -> list[Any]:
    """Per metric: summaries present, finite values, their sum, sum of squares, min, max,
    and the non-finite ones."""
    last = metric_summary.c.last
    return [func.count(metric_summary.c.run_pk), func.count(last), func.sum(last),
            func.sum(last * last), func.min(last), func.max(last),
            func.count(metric_summary.c.last_nonfinite)]


def with_stats(store: Any, found: Sequence[Group], *, condition: ColumnElement[bool] | None = None,
               metric: str | None = None, statuses: Sequence[str] | None = ("FINISHED",),
               extra: Mapping[int, str] | None = None) -> list[Group]:
    """``found`` (from :func:`tally`, same arguments) with its first member's name and the
    statistics of ``metric`` (of every metric when None) over the runs of ``statuses`` (None:
    all). A few groups are read by their keys; many, with the whole condition."""
    sums, first = _sums(store, found, condition, metric, statuses, extra, names=True)
    out = []
    for g, (ident, metrics) in zip(found, sums.items(), strict=True):
        stats = {k: metrics[k].stats(k, g.n) for k in sorted(metrics)}
        out.append(Group(g.key, g.project, g.runs, g.n, g.left_out, stats, g.newest,
                         first.get(ident, g.name), g.owners))
    return out


def _sums(store: Any, found: Sequence[Group], condition: ColumnElement[bool] | None,
          metric: str | None, statuses: Sequence[str] | None, extra: Mapping[int, str] | None,
          *, names: bool) -> tuple[dict[tuple[int, str], dict[str, _Acc]], dict]:
    """Per group of ``found``, in its order: each metric's sums; and the first names."""
    first: dict[tuple[int, str], str] = {}
    if not found:
        return {}, first
    with store.reading() as conn:
        ids = {name: pid for pid, name in conn.execute(select(project.c.id, project.c.name))}
        sums: dict[tuple[int, str], dict[str, _Acc]] = {(ids[g.project], g.key): {}
                                                          for g in found}
        where = [_where(None, condition)]
        if len(found) <= _BATCH:
            where.append(run.c.group_key.in_(sorted({g.key for g in found})))
        _sql_stats(conn, sums, first if names else None, and_(*where), metric, statuses)
        keys = {k for _, k in sums}
        _extra_stats(conn, sums, first if names else None,
                     {pk: k for pk, k in (extra or {}).items() if k in keys}, metric, statuses)
    return sums, first


def summarise(store: Any, keying: Keying | None, *, condition: ColumnElement[bool] | None = None,
              metric: str | None = None, statuses: Sequence[str] | None = ("FINISHED",),
              extra: Mapping[int, str] | None = None) -> list[Group]:
    """:func:`tally` and :func:`with_stats` in one: every group with its statistics."""
    found = tally(store, keying, condition=condition, statuses=statuses, extra=extra)
    return with_stats(store, found, condition=condition, metric=metric, statuses=statuses,
                      extra=extra)


def _where(keying: Keying | None, condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    parts = [run.c.group_key.is_not(None) if keying is None else keying.current()]
    return and_(*parts, *([] if condition is None else [condition]))


def _sql_stats(conn: Connection, sums: dict, first: dict | None, where: ColumnElement[bool],
               metric: str | None, statuses: Sequence[str] | None) -> None:
    """Names, then each metric's sums, aggregated by the database (grouped by key first: the
    order of its index)."""
    key, pid = run.c.group_key, run.c.project_id
    if first is not None:
        for k, p, name in conn.execute(select(key, pid, func.min(run.c.name)).where(where)
                                       .group_by(key, pid)):
            if (p, k) in sums and name is not None:
                first[p, k] = name
    join = metric_summary.c.run_pk == run.c.pk
    by = [key, pid]
    if metric is None:
        by.append(metric_summary.c.key)
    else:  # one metric: grouped in the index's order, no sort
        join = join & (metric_summary.c.key == metric)
    # An outer join: SQLite then reads the runs from the group-key index, and each one's
    # summary by its primary key, rather than every matching run's (wide) row.
    query = (select(key, pid, literal(metric) if metric else metric_summary.c.key,
                    *_aggregates())
             .select_from(run.outerjoin(metric_summary, join)).where(where).group_by(*by))
    if statuses is not None:  # tested on each run read (SQLite would use its own index)
        query = query.where(func.coalesce(run.c.status, "").in_(list(statuses)))
    for k, p, name, present, *aggregates in conn.execute(query):
        metrics = sums.get((p, k))
        if present and metrics is not None:
            acc = metrics.get(name) or metrics.setdefault(name, _Acc())
            acc.merge(*aggregates)


def _extra_rows(conn: Connection, extra: Mapping[int, str], *columns: Any):
    """(pk, project id, *columns) of the runs of ``extra``, in batches."""
    pks = list(extra)
    for start in range(0, len(pks), _BATCH):
        yield from conn.execute(select(run.c.pk, run.c.project_id, *columns)
                                .where(run.c.pk.in_(pks[start:start + _BATCH])))


def _extra_stats(conn: Connection, sums: dict, first: dict | None, extra: Mapping[int, str],
                 metric: str | None, statuses: Sequence[str] | None) -> None:
    """The same for runs whose keys were computed but not stored, one run at a time."""
    counted: dict[int, dict[str, _Acc]] = {}
    for pk, p, status, name in _extra_rows(conn, extra, run.c.status, run.c.name):
        ident = (p, extra[pk])
        if ident not in sums:
            continue
        if first is not None and name is not None and name < first.get(ident, "\U0010ffff"):
            first[ident] = name
        if statuses is None or status in statuses:
            counted[pk] = sums[ident]
    pks = list(counted)
    for start in range(0, len(pks), _BATCH):
        query = select(metric_summary.c.run_pk, metric_summary.c.key, metric_summary.c.last,
                       metric_summary.c.last_nonfinite).where(
            metric_summary.c.run_pk.in_(pks[start:start + _BATCH]))
        if metric is not None:
            query = query.where(metric_summary.c.key == metric)
        for pk, name, last, nonfinite in conn.execute(query):
            finite = last is not None
            acc = counted[pk].setdefault(name, _Acc())
            acc.merge(int(finite), last, last * last if finite else None, last, last,
                      int(nonfinite is not None))


def members(store: Any, project_id: int, key: str, metric: str,
            extra: Mapping[int, str] | None = None) -> list[Member]:
    """Every run of one group, newest first, with its last value of ``metric``."""
    theirs = [pk for pk, k in (extra or {}).items() if k == key]
    belongs = (run.c.project_id == project_id) & (run.c.group_key == key)
    if theirs:
        belongs = belongs | ((run.c.project_id == project_id) & run.c.pk.in_(theirs))
    query = (select(run.c.id, run.c.name, run.c.owner, run.c.status, metric_summary.c.run_pk,
                    metric_summary.c.last, metric_summary.c.last_nonfinite)
             .select_from(run.outerjoin(metric_summary, (metric_summary.c.run_pk == run.c.pk)
                                        & (metric_summary.c.key == metric)))
             .where(belongs).order_by(run.c.start_time.desc()))
    with store.reading() as conn:
        return [Member(run_id, name, owner, status, has is not None, last, nonfinite)
                for run_id, name, owner, status, has, last, nonfinite in conn.execute(query)]


def groups_of(store: Any, pks: Sequence[int], statuses: Sequence[str] | None = ("FINISHED",)
              ) -> dict[int, Group]:
    """The group of each of a few runs, by its stored key whatever made it, with its owners
    (for the "has this been tried?" warning: a few indexed reads)."""
    with store.reading() as conn:
        keys = {pk: (p, k) for pk, p, k in conn.execute(
            select(run.c.pk, run.c.project_id, run.c.group_key)
            .where(run.c.pk.in_(list(pks)), run.c.group_key.is_not(None)))}
        if not keys:
            return {}
        wanted = or_(*[(run.c.project_id == p) & (run.c.group_key == k)
                       for p, k in set(keys.values())])
        owners: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
        for p, k, owner, count in conn.execute(
                select(run.c.project_id, run.c.group_key, run.c.owner, func.count())
                .where(wanted).group_by(run.c.project_id, run.c.group_key, run.c.owner)):
            owners[p, k].append((-count, owner))
        names = dict(conn.execute(select(project.c.id, project.c.name)).all())
    found = {(g.project, g.key): g for g in summarise(store, None, condition=wanted,
                                                      statuses=statuses)}
    out = {}
    for pk, (p, k) in keys.items():
        if (names[p], k) in found:
            out[pk] = replace(found[names[p], k],
                              owners=tuple(o for _, o in sorted(owners[p, k])))
    return out


def project_name(store: Any, project_id: int) -> str:
    """A project's name by its id."""
    with store.reading() as conn:
        return conn.execute(select(project.c.name).where(project.c.id == project_id)).scalar_one()
