"""Turn query literals into what the columns hold: epoch seconds, booleans, statuses."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from registry.entities import RunStatus
from registry.errors import QueryError
from registry.query._parser import Value
from registry.store.schema import RUN_STATUSES

__all__ = ["STATUSES", "boolean", "seconds", "status", "time_span"]

STATUSES = (*RUN_STATUSES, RunStatus.CRASHED)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPAN = re.compile(r"(\d+\.?\d*|\.\d+)([smhd])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def time_span(value: Value, query: str) -> tuple[float, float]:
    """``[start, end)`` in epoch seconds: a whole day for a date, one instant otherwise.

    Dates and times without an offset are local time, as ``cairn runs list`` shows them."""
    if value.number is not None:
        return value.number, value.number
    try:
        moment = datetime.fromisoformat(value.text)
        start = moment.timestamp()
        end = (moment + timedelta(days=1)).timestamp() if _DATE.fullmatch(value.text) else start
    except (ValueError, OverflowError, OSError) as exc:
        raise QueryError(query, value.pos, "a date (2026-11-01 or 2026-11-01T12:00) or epoch "
                                           "seconds") from exc
    return start, end


def seconds(value: Value, query: str) -> float:
    """A duration: seconds, or a number with a unit (90s, 15m, 2h, 1.5d)."""
    if value.number is not None:
        return value.number
    span = _SPAN.fullmatch(value.text)
    if span is None:
        raise QueryError(query, value.pos, "a duration in seconds, or with a unit (15m, 2h, 1d)")
    return float(span.group(1)) * _UNITS[span.group(2).lower()]


def boolean(value: Value, query: str) -> bool:
    text = value.text.lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise QueryError(query, value.pos, "true or false")


def status(value: Value, query: str) -> str:
    text = value.text.upper()
    if text not in STATUSES:
        raise QueryError(query, value.pos,
                         f"a run status: {', '.join(s.lower() for s in STATUSES)}")
    return text
