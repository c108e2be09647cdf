"""Records into table rows and short text for the pages: plain functions, no store."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote as url_quote

from registry.entities import RunRecord

__all__ = [
    "FACET_FIELDS", "RUN_LINK_TEXT", "SYSTEM", "best_value", "common_metrics", "duration",
    "facet_query", "label", "last_value", "metric_text", "names_run", "own_first", "quote",
    "run_rows", "run_url", "short", "size", "table_of", "text", "when",
]

SYSTEM = "system/"  # the sampler's metrics (issue 17): shown apart from the run's own
RUN_LINK_TEXT = r"id=([0-9a-f]{8})"  # a run link shows the id's first 8 digits


def short(run_id: str) -> str:
    return run_id[:8]


def run_url(run_id: str) -> str:
    """The run page's address, relative: it resolves beside the page it is on, so it holds
    behind a reverse proxy's path (``--base-url-path``) too."""
    return f"run?id={run_id}"


def card_url(ref: str) -> str:
    """The Catalog page of a card (``name@version``), relative like :func:`run_url`."""
    return "catalog?card=" + url_quote(ref, safe="@.-_")


CARD_LINK_TEXT = r"card=(.*)$"


def names_run(ref: str, run: RunRecord) -> bool:
    """Whether a reference (as a card's ``runs`` list holds it) names this run: its id, an id
    prefix of 4 digits or more, or its name."""
    ref = str(ref).strip()
    return ref == run.name or ref.lower() == run.id or (
        len(ref) >= 4 and run.id.startswith(ref.lower()))


def own_first(keys: Iterable[str]) -> list[str]:
    """Metric keys sorted, the run's own before the sampler's ``system/`` ones."""
    return sorted(keys, key=lambda k: (k.startswith(SYSTEM), k))


def size(nbytes: int | None) -> str:
    """Bytes for people: 1.2 MB, 345 kB (powers of 1000)."""
    if nbytes is None:
        return ""
    if nbytes < 1000:
        return f"{nbytes} B"
    value, unit = float(nbytes), "B"
    for unit in ("kB", "MB", "GB", "TB"):  # noqa: B007 (the last one is kept)
        value /= 1000
        if value < 1000:
            break
    return f"{value:.3g} {unit}"


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
    ranked = sorted(counts, key=lambda k: (k.startswith(SYSTEM), -counts[k],
                                           not k.startswith(("val", "eval")), k))
    return (chosen + [k for k in ranked if k not in chosen])[:limit]


def run_rows(runs: Sequence[RunRecord], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run: identity, status, times, then the last value of each metric."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "name": run.name or "", "id": run_url(run.id), "project": run.project,
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
