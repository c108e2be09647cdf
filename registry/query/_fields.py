"""What a field name in a query means: a run attribute, a param, a metric, a tag or data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement

from registry.errors import QueryError
from registry.store.schema import project, run

__all__ = ["AGGREGATES", "ATTRIBUTES", "DATA_PARTS", "Attribute", "Field", "resolve"]

AGGREGATES = ("last", "min", "max", "count")
DATA_PARTS = ("hash", "path", "pushed")  # pushed: in the DVC remote (true, false, unknown)


@dataclass(frozen=True)
class Attribute:
    """A run attribute: the SQL expression and how values compare with it.

    kinds: text (exact / contains), prefix (hashes and ids: ``=`` is "starts with"),
    time (dates or epoch seconds), seconds, bool, status."""

    column: ColumnElement
    kind: str
    nullable: bool = True


ATTRIBUTES: dict[str, Attribute] = {
    "id": Attribute(run.c.id, "prefix", nullable=False),
    "name": Attribute(run.c.name, "text"),
    "owner": Attribute(run.c.owner, "text", nullable=False),
    "project": Attribute(project.c.name, "text", nullable=False),
    "status": Attribute(run.c.status, "status", nullable=False),
    "started": Attribute(run.c.start_time, "time", nullable=False),
    "ended": Attribute(run.c.end_time, "time"),
    "duration": Attribute(run.c.end_time - run.c.start_time, "seconds"),
    "commit": Attribute(run.c.git_commit, "prefix"),
    "branch": Attribute(run.c.git_branch, "text"),
    "dirty": Attribute(run.c.git_dirty, "bool"),
    "host": Attribute(run.c.hostname, "text"),
    "fingerprint": Attribute(run.c.fingerprint, "prefix"),
    "parent": Attribute(run.c.parent_id, "prefix"),
    "family": Attribute(run.c.model_family, "text"),
    "question": Attribute(run.c.question, "text"),
    "notes": Attribute(run.c.notes, "text"),
    "conclusion": Attribute(run.c.conclusion, "text"),
}
_CODE = {"commit": "commit", "branch": "branch", "dirty": "dirty"}
_PREFIXES = {"params": "param", "param": "param", "metrics": "metric", "metric": "metric",
             "tags": "tag", "tag": "tag"}


@dataclass(frozen=True)
class Field:
    """kind: attribute, param, metric, tag or data. ``key`` is the attribute name, param,
    metric or tag key, or the data role ('' for any role); ``part`` is a metric's aggregate
    or data's ``hash`` / ``path`` / ``pushed``. ``bare`` marks a metric named without
    ``metrics.``."""

    kind: str
    key: str
    part: str = ""
    bare: bool = False


def resolve(name: str, pos: int, query: str) -> Field:
    """The field ``name`` (written at ``pos`` of ``query``) stands for."""
    head, dot, rest = name.partition(".")
    lowered = head.lower()
    if not dot and lowered in ATTRIBUTES:
        return Field("attribute", lowered)
    if dot and lowered == "code":
        if rest.lower() not in _CODE:
            raise QueryError(query, pos + len(head) + 1,
                             f"a known attribute after 'code.' ({', '.join(_CODE)})")
        return Field("attribute", _CODE[rest.lower()])
    if lowered == "data":
        return _data(rest if dot else "")
    if dot and lowered in _PREFIXES:
        if not rest:
            raise QueryError(query, pos + len(name), f"a {_PREFIXES[lowered]} name after "
                                                     f"'{head}.'")
        if _PREFIXES[lowered] == "metric":
            return _metric(rest, bare=False)
        return Field(_PREFIXES[lowered], rest)
    return _metric(name, bare=True)


def _metric(name: str, *, bare: bool) -> Field:
    key, dot, aggregate = name.rpartition(".")
    if dot and key and aggregate.lower() in AGGREGATES:
        return Field("metric", key, aggregate.lower(), bare)
    return Field("metric", name, "last", bare)


def _data(rest: str) -> Field:
    role, dot, part = rest.rpartition(".")
    if not dot:
        role, part = ("", rest) if rest.lower() in DATA_PARTS else (rest, "hash")
    elif part.lower() not in DATA_PARTS:
        role, part = rest, "hash"
    return Field("data", role, part.lower())
