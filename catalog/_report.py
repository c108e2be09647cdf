"""``cairn report PROJECT``: a handover report, in Markdown and HTML, for whoever comes next.

The question, the runs and who ran them, the best models and their cards, MoV progress, and
the open questions and conclusions people wrote in their runs.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog._card import ModelCard
from catalog.errors import CatalogError
from registry.config import Workspace, load_workspace
from registry.entities import RunRecord

__all__ = ["Report", "report"]

_MAX_RUNS = 10_000
_BEST = 5
_OPEN = re.compile(r"^\s*(open question|question|todo|q)\s*[:\-]|\?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Report:
    """Where the report was written."""

    project: str
    markdown: Path
    html: Path


def report(project: str, *, out: str | Path | None = None,
           workspace: Workspace | None = None) -> Report:
    """Write ``<out>/<project>-handover.md`` and ``.html`` (default out: ``reports/`` in the
    workspace) and return their paths."""
    from registry.client import list_runs
    from registry.knowledge.mov import mov_progress, value_for_money

    ws = workspace or load_workspace()
    runs = list_runs(project, limit=_MAX_RUNS, workspace=ws)
    movs = mov_progress(project, workspace=ws)
    spent = next(iter(value_for_money(project, workspace=ws)), None)
    if not runs and not movs:
        raise CatalogError(f"project {project!r} has no runs and no MoV definitions")
    cards = [c for c in _cards(ws) if c.project == project or set(c.runs) & {r.id for r in runs}]
    text = _markdown(project, ws, runs, movs, cards) + _spending(spent)
    folder = Path(out) if out is not None else ws.root / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", project).strip("-.") or "project"
    md_path, html_path = folder / f"{stem}-handover.md", folder / f"{stem}-handover.html"
    md_path.write_text(text, encoding="utf-8")
    html_path.write_text(_html(project, text), encoding="utf-8")
    return Report(project, md_path, html_path)


def _cards(ws: Workspace) -> list[ModelCard]:
    """Cards of the catalog directory, and indexed ones not there (another machine's)."""
    from catalog._api import list_cards
    from catalog._index import stored_cards

    cards = list_cards(workspace=ws)
    seen = {c.ref for c in cards}
    return cards + [c for c in stored_cards(ws.open_store()) if c.ref not in seen]


def _markdown(project: str, ws: Workspace, runs: list[RunRecord], movs: list[Any],
              cards: list[ModelCard]) -> str:
    now = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"# Handover: {_inline(project)}\n", f"Written by Cairn on {now} from the "
             f"registry ({len(runs)} runs) and the catalog ({len(cards)} cards).\n",
             _question(project, ws, runs), _people(runs), _runs_table(runs, ws),
             _best(runs, ws, cards), _mov(movs), _open(runs), _conclusions(runs)]
    return "\n".join(parts)


def _question(project: str, ws: Workspace, runs: list[RunRecord]) -> str:
    lines = ["## The question\n"]
    description = (ws.projects.get(project) or {}).get("description")
    if description:
        lines.append(f"{_inline(str(description))}\n")
    questions = list(dict.fromkeys(r.question.strip() for r in reversed(runs) if r.question))
    lines += [f"- {_inline(q)}" for q in questions]
    if len(lines) == 1:
        lines.append("No run recorded a question; set one with `run.set_question(...)`.")
    return "\n".join(lines) + "\n"


def _people(runs: list[RunRecord]) -> str:
    lines = ["## Who ran what\n", "| person | runs | first | last |", "|---|---|---|---|"]
    for owner, count in Counter(r.owner for r in runs).most_common():
        times = [r.start_time for r in runs if r.owner == owner]
        lines.append(f"| {_cell(owner)} | {count} | {_day(min(times))} | {_day(max(times))} |")
    return "\n".join(lines) + "\n"


def _runs_table(runs: list[RunRecord], ws: Workspace) -> str:
    lines = [f"## Runs ({len(runs)})\n", "| started | run | name | owner | status | result |",
             "|---|---|---|---|---|---|"]
    for r in runs[:200]:
        lines.append(f"| {_day(r.start_time)} | `{r.id[:8]}` | {_cell(r.name or '-')} | "
                     f"{_cell(r.owner)} | {r.status} | {_result(r, ws)} |")
    if len(runs) > 200:
        lines.append(f"\n{len(runs) - 200} older runs not shown (`cairn runs list`).")
    return "\n".join(lines) + "\n"


def _best(runs: list[RunRecord], ws: Workspace, cards: list[ModelCard]) -> str:
    lines = ["## Best models\n"]
    scored = [(s, r) for r in runs if r.status == "FINISHED"
              and (s := _score(r, ws)) is not None]
    scored.sort(key=lambda item: item[0], reverse=True)
    if not scored:
        lines.append("No finished run has a metric to rank it by.")
    for _, r in scored[:_BEST]:
        linked = [c for c in cards if r.id in c.runs]
        card_text = ", ".join(f"card `{c.ref}` ({c.status}, {c.path or 'indexed'})"
                              for c in linked) or "no card yet: `cairn catalog new --from-run "\
                                                  f"{r.id[:8]}`"
        lines.append(f"- `{r.id[:8]}` {_inline(r.name or '')} by {_inline(r.owner)}: "
                     f"{_result(r, ws)}; {card_text}")
    unlinked = [c for c in cards if not set(c.runs) & {r.id for _, r in scored[:_BEST]}]
    if unlinked:
        lines += ["", "Other cards of the project: "
                  + ", ".join(f"`{c.ref}` ({c.status})" for c in unlinked)]
    return "\n".join(lines) + "\n"


def _mov(movs: list[Any]) -> str:
    lines = ["## Measured organisational value\n"]
    if not movs:
        return "\n".join([*lines, "The project defines no MoV.\n"])
    lines += ["| MoV | unit | baseline | target | best | latest | % to target | measurements |",
              "|---|---|---|---|---|---|---|---|"]
    for m in movs:
        pct = "-" if m.percent_to_target is None else f"{m.percent_to_target:.0f}%"
        lines.append(f"| {_cell(m.name)} | {_cell(m.unit)} | {m.baseline:g} | {m.target:g} | "
                     f"{_g(m.best)} | {_g(m.latest)} | {pct} | {m.count} |")
    return "\n".join(lines) + "\n"


def _spending(v: Any) -> str:
    """What the project cost so far and what each MoV gained per 100 of it."""
    lines = ["\n## Cost and value for money\n"]
    if v is None:
        return "\n".join([*lines, "No run recorded a cost (no `[costs]` prices).\n"])
    unit = _cell(v.currency) or "(no currency set)"
    lines.append(f"Cost so far: **{v.total_cost:,.2f} {unit}** over {v.costed_runs} runs"
                 + (f"; {v.uncosted_runs} more runs have no cost (a price was missing), so "
                    "this is a lower bound." if v.uncosted_runs else ".") + "\n")
    gains = [(name, pts) for name, pts in v.per_100.items() if pts is not None]
    if gains:
        lines += [f"| MoV | points toward target per 100 {unit} |", "|---|---|"]
        lines += [f"| {_cell(name)} | {pts:+.2f} |" for name, pts in gains]
    return "\n".join(lines) + "\n"


def _open(runs: list[RunRecord]) -> str:
    lines = ["## Open questions\n"]
    for r in runs:
        if r.question and not r.conclusion and r.status != "RUNNING":
            lines.append(f"- {_inline(r.question)} (run `{r.id[:8]}`, no conclusion yet)")
        for paragraph in _paragraphs(r.notes):
            if _OPEN.search(paragraph):
                lines.append(f"- {_inline(paragraph)} (notes of `{r.id[:8]}`, {r.owner})")
    if len(lines) == 1:
        lines.append("None written down.")
    return "\n".join(lines) + "\n"


def _conclusions(runs: list[RunRecord]) -> str:
    lines = ["## Conclusions\n"]
    lines += [f"- {_day(r.start_time)}, {_inline(r.owner)}, `{r.id[:8]}`: "
              f"{_inline(r.conclusion)}" for r in runs if r.conclusion]
    if len(lines) == 1:
        lines.append("No run recorded a conclusion; set one with `run.set_conclusion(...)`.")
    return "\n".join(lines) + "\n"


def _score(r: RunRecord, ws: Workspace) -> float | None:
    from registry.knowledge.similarity import primary_metric

    metric = primary_metric(r, ws.projects)
    summary = r.metrics.get(metric[0]) if metric else None
    if summary is None:
        return None
    value = summary.max if metric[1] == "max" else summary.min
    return None if value is None else (value if metric[1] == "max" else -value)


def _result(r: RunRecord, ws: Workspace) -> str:
    from registry.knowledge.similarity import primary_metric

    metric = primary_metric(r, ws.projects)
    summary = r.metrics.get(metric[0]) if metric else None
    if summary is None:
        return "-"
    value = summary.max if metric[1] == "max" else summary.min
    return f"{metric[0]} {_g(value)}"


def _paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]


def _inline(text: str) -> str:
    """One line of people's text, shown as written: HTML in it is escaped, not interpreted."""
    return html.escape(" ".join(str(text).split()), quote=False)


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")


def _day(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d")


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _html(project: str, markdown_text: str) -> str:
    from catalog._render import highlight_css, render_markdown

    body = render_markdown(markdown_text)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Handover: {html.escape(project)}</title>"
            f"<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}"
            f"{highlight_css()}</style></head>\n<body>\n{body}\n</body></html>\n")
