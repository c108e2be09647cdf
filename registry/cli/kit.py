"""The kit for ``cairn`` command groups, used by every package that plugs one in.

- :class:`CairnGroup`: a click group whose commands report Cairn's own errors as one-line
  messages (exit 1, no traceback);
- :func:`table`, :func:`value`, :func:`timestamp`, :func:`duration`: plain-text tables and
  values for the terminal; :func:`runs_table`: the one-line-per-run table of ``cairn runs``.

A package adds its group to ``cairn`` through the ``cairn.commands`` entry point group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from registry.errors import CairnError

__all__ = ["CairnGroup", "duration", "report_failures", "runs_table", "table", "timestamp",
           "value"]


class CairnGroup(click.Group):
    """Turns :class:`CairnError` into ``click.ClickException`` (exit 1, no traceback), also when
    the group is used on its own, as plugin groups and tests do."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CairnError as exc:
            raise click.ClickException(str(exc)) from exc


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(h) for h in headers], *[[value(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def runs_table(records: Sequence[Any], metrics: int = 3) -> str:
    """Runs one per line: short id, project, name, owner, status, start, duration and the
    last value of their first ``metrics`` metrics."""
    rows = [(r.id[:8], r.project, r.name, r.owner, r.status, timestamp(r.start_time),
             duration(r.duration), _metrics_brief(r, metrics)) for r in records]
    return table(["id", "project", "name", "owner", "status", "started", "time", "metrics"], rows)


def _metrics_brief(r: Any, limit: int) -> str:
    items = sorted(r.metrics.items())[:limit]
    more = " ..." if len(r.metrics) > limit else ""
    return " ".join(f"{k}={value(s.last)}" for k, s in items) + more


def value(v: Any) -> str:
    """A compact rendering: floats to 6 significant digits, None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def timestamp(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def report_failures(warnings: Iterable[str], failed: Mapping[str, str],
                    what: str = "run") -> None:
    """Warnings and per-run errors on stderr; exit 1 when any run failed."""
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    for run_id, error in failed.items():
        click.echo(f"error: {what} {run_id[:8]}: {error}", err=True)
    if failed:
        raise SystemExit(1)
