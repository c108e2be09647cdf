"""Records into table rows and short text for the pages: plain functions, no store."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from registry.entities import RunRecord

__all__ = [
    "FACET_FIELDS", "best_value", "common_metrics", "duration", "facet_query", "label",
    "last_value", "metric_text", "quote", "run_rows", "short", "table_of", "text", "when",
]


def short(run_id: str) -> str:
    return run_id[:8]


def label(run: RunRecord) -> str:
    """``name (id8)``, or the id alone for a run without a name."""
    return f"{run.name} ({short(run.id)})" if run.name else short(run.id)


def when(timestamp: float | None) -> datetime | None:
    """The moment in UTC, without a timezone: tables show UTC, and Streamlit reads
    timezone-aware columns through a pandas API that pandas 4 deprecates."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def text(value: Any) -> str:
    """A value as a table shows it: numbers to 6 significant digits, missing as "—"."""
    if value is None or str(value) == "—":
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def best_value(run: RunRecord, metric: tuple[str, str] | None) -> float | None:
    """The run's best value of ``metric`` (name, 'max'|'min'), or None."""
    summary = run.metrics.get(metric[0]) if metric else None
    if summary is None:
        return None
    return summary.max if metric[1] == "max" else summary.min


def last_value(run: RunRecord, key: str | None) -> float | None:
    summary = run.metrics.get(key) if key else None
    return None if summary is None else summary.last


def metric_text(run: RunRecord, metric: tuple[str, str] | None) -> str:
    value = best_value(run, metric)
    return "" if value is None or metric is None else f"{metric[0]} = {value:.4g}"


def common_metrics(runs: Sequence[RunRecord], first: Iterable[str] = (), limit: int = 6
                   ) -> list[str]:
    """Metric keys for table columns: ``first``, then those most runs logged (validation
    metrics ahead of others)."""
    counts: dict[str, int] = {}
    for run in runs:
        for key in run.metrics:
            counts[key] = counts.get(key, 0) + 1
    chosen = [k for k in first if k in counts]
    ranked = sorted(counts, key=lambda k: (-counts[k], not k.startswith(("val", "eval")), k))
    return (chosen + [k for k in ranked if k not in chosen])[:limit]


def run_rows(runs: Sequence[RunRecord], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run: identity, status, times, then the last value of each metric."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "name": run.name or "", "id": short(run.id), "project": run.project,
            "owner": run.owner, "status": run.status, "started": when(run.start_time),
            "duration": duration(run.duration),
        }
        for key in metrics:
            summary = run.metrics.get(key)
            value = summary.last if summary else None
            row[key] = None if value is None or not math.isfinite(value) else value
        rows.append(row)
    return rows


def table_of(table: Mapping[str, Sequence[Any]], columns: Sequence[str],
             keys: Iterable[str] | None = None) -> list[dict[str, str]]:
    """A key -> one value per run table as rows: ``key`` then one text column per run."""
    return [{"key": key, **{c: text(v) for c, v in zip(columns, table[key], strict=True)}}
            for key in (table if keys is None else keys)]


FACET_FIELDS = {"project": "project", "owner": "owner", "status": "status",
                "data": "data.hash", "backbone": "family"}
"""Facet -> the search-language field it filters on."""


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def literal(value: Any) -> str:
    """Text for Streamlit's Markdown elements (headers, captions) shown as typed: a card's
    ``[x](javascript:...)`` stays text, not a link."""
    return _MARKDOWN.sub(r"\\\1", "" if value is None else str(value))


def quote(value: str) -> str:
    """A value as a quoted string of the search language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def facet_query(query: str, chosen: Mapping[str, Sequence[str]]) -> str:
    """The search box's query and the chosen facet values (any of a facet's values, every
    facet) as one query of the search language."""
    parts = [f"({query.strip()})"] if query.strip() else []
    for facet, values in chosen.items():
        if values:
            field = FACET_FIELDS[facet]
            parts.append("(" + " or ".join(f"{field} = {quote(v)}" for v in values) + ")")
    return " and ".join(parts)
