"""The run page's sections about the record itself: header, cost and energy, code, data,
params, hardware and environment. Every text a run carries (names, notes, params, tags) is
shown as typed: in tables, or escaped for Markdown (``_format.literal``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import streamlit as st

from dashboard import _format, data
from dashboard._format import literal
from registry.entities import RunRecord, RunStatus
from registry.knowledge.comparison import flatten

__all__ = ["STATUS_COLOURS", "USAGE", "code_section", "cost_section", "data_section", "header",
           "machine_section", "params_section"]

USAGE = ("gpu_hours", "energy_kwh", "energy.gpu_kwh", "energy.cpu_kwh", "cost")
"""What a run used (issue 17), recorded as metrics at step 0: shown as figures, not curves."""
STATUS_COLOURS = {"FINISHED": "green", "RUNNING": "blue", "FAILED": "red", "CRASHED": "red",
                  "KILLED": "orange"}
DIFF_SHOWN = 1_000_000  # bytes of a diff shown inline; the rest is cut


def header(run: RunRecord) -> None:
    """Name, project, owner, status, times, the run's question, notes, conclusion and tags."""
    st.title(literal(run.name or _format.short(run.id)))
    ended = f" · ended {_format.when(run.end_time):%Y-%m-%d %H:%M:%S}" if run.end_time else ""
    st.markdown(f":{STATUS_COLOURS.get(run.status, 'gray')}-badge[{run.status}] "
                f"**{literal(run.project)}** · {literal(run.owner)} · "
                f"started {_format.when(run.start_time):%Y-%m-%d %H:%M:%S}{ended} UTC · "
                f"{_format.duration(run.duration) or 'no end yet'}")
    st.caption(f"id {run.id}")
    _status_note(run)
    if run.warnings:
        st.warning("\n".join(f"- {literal(w)}" for w in run.warnings),
                   icon=":material/warning:")
    for label, value in (("Question", run.question), ("Notes", run.notes),
                         ("Conclusion", run.conclusion)):
        if value:
            st.markdown(f"**{label}:** {literal(value)}")
    tags = {k: v for k, v in run.tags.items() if not k.startswith("cairn.")}
    if tags:  # a line, not a table: the page's first table would hold up its curves
        st.markdown("**Tags:** " + " · ".join(literal(f"{k} = {v}" if v else k)
                                              for k, v in sorted(tags.items())))


def _status_note(run: RunRecord) -> None:
    if run.status == RunStatus.CRASHED:
        beat = _utc(run.heartbeat_time)
        st.error(f"**Crashed**: its last heartbeat was at {beat} and it never ended: the "
                 "process died, or lost the store. Metrics up to then are kept.",
                 icon=":material/heart_broken:")
    elif run.status == RunStatus.FAILED:
        st.error("**Failed**" + (f": {literal(run.failure)}" if run.failure else "."))
    elif run.status == RunStatus.KILLED:
        st.warning("**Killed**" + (f": {literal(run.failure)}" if run.failure else "."))
    elif run.status == RunStatus.RUNNING:
        st.info(f"**Running**: last heartbeat at {_utc(run.heartbeat_time)}.")


def _utc(timestamp: float | None) -> str:
    return "—" if timestamp is None else (
        datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def cost_section(run: RunRecord) -> None:
    """Device hours, energy and cost, with how they were measured and the prices used."""
    tags = run.tags
    if not any(k in run.metrics for k in USAGE) and not any(
            k.startswith(("cairn.cost.", "cairn.energy.")) for k in tags):
        return
    st.subheader("Cost and energy")
    hours, energy, cost = st.columns(3)
    used = {k: _last(run, k) for k in USAGE}
    hours.metric("GPU hours", "—" if used["gpu_hours"] is None else f"{used['gpu_hours']:.4g}")
    energy.metric("Energy", "not measured" if used["energy_kwh"] is None
                  else f"{used['energy_kwh']:.4g} kWh")
    currency = tags.get("cairn.cost.currency", "")
    cost.metric("Cost", "unknown" if used["cost"] is None
                else f"{used['cost']:.4g} {currency}".strip())
    notes = [f"Cost unknown: {tags['cairn.cost.unknown']}" if tags.get("cairn.cost.unknown")
             else None, f"Energy: {tags['cairn.energy.method']}"
             if tags.get("cairn.energy.method") else None]
    notes.append(", ".join(f"{k.split('.')[1]} {used[k]:.4g}" for k in USAGE[2:4]
                           if used[k] is not None) or None)
    for note in filter(None, notes):
        st.caption(literal(note))
    if tags.get("cairn.cost.prices"):
        with st.expander("Prices used"):
            st.code(_pretty(tags["cairn.cost.prices"]), language="json")


def _last(run: RunRecord, key: str) -> float | None:
    summary = run.metrics.get(key)
    return None if summary is None else summary.last


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


def code_section(run: RunRecord) -> None:
    """Commit, branch, dirty flag, the command; the uncommitted diff shown as a diff."""
    st.subheader("Code")
    code = run.code
    fields = {"commit": code.get("commit"), "branch": code.get("branch"),
              "remote": code.get("remote"), "uncommitted changes": code.get("dirty"),
              "git state": code.get("state"), "command": run.command,
              "entry point": run.entry_point, "working folder": run.cwd, "host": run.hostname}
    rows = [{"field": k, "value": _format.text(v)} for k, v in fields.items()
            if v not in (None, "")]
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("No code version was recorded (not a git repository).")
    diff = code.get("diff_sha256")
    if diff:
        with st.expander("Uncommitted changes (diff)", expanded=bool(code.get("dirty"))):
            _diff(diff)


def _diff(sha256: str) -> None:
    try:
        blob = data.artifact_bytes(sha256, DIFF_SHOWN)
    except Exception as exc:  # a missing or unreadable blob must not break the page
        st.warning(literal(f"The diff ({sha256[:12]}) cannot be read: {exc}"))
        return
    if len(blob) > DIFF_SHOWN:
        st.caption(f"The first {_format.size(DIFF_SHOWN)} of the diff:")
    st.code(blob[:DIFF_SHOWN].decode("utf-8", errors="replace"), language="diff")


def data_section(run: RunRecord) -> None:
    """The dataset versions the run used, with whether the copy matched what DVC recorded."""
    st.subheader("Data")
    if not run.datasets:
        st.caption("No data versions were recorded.")
        return
    cards = data.dataset_cards_of(tuple(sorted({d.hash for d in run.datasets if d.hash})))
    st.dataframe([{
        "role": d.role, "path": d.path, "hash": d.hash, "files": d.nfiles,
        "size": _format.size(d.size), "remote": d.remote, "tracked": d.tracked,
        "dirty": d.dirty, "checked by": d.dirty_check, "from": d.source,
        "card": _format.card_url(cards[d.hash]) if d.hash in cards else None}
        for d in run.datasets], hide_index=True, column_config={"card": st.column_config.LinkColumn(
            "dataset card", display_text=_format.CARD_LINK_TEXT)})
    dirty = [d.path for d in run.datasets if d.dirty]
    if dirty:
        st.warning(literal("Data differed from what DVC recorded: " + ", ".join(dirty)))


def params_section(run: RunRecord) -> None:
    """Every param, filtered by a text typed (in its key or its value)."""
    st.subheader("Params")
    if not run.params:
        st.caption("No params were logged.")
        return
    typed = st.text_input("Filter params", key="param_filter", placeholder="lr, backbone...")
    wanted = typed.strip().lower()
    rows = [{"param": k, "value": _format.text(v)} for k, v in sorted(run.params.items())]
    shown = [r for r in rows if wanted in r["param"].lower() or wanted in r["value"].lower()]
    st.caption(f"{len(shown)} of {len(rows)} params")
    st.dataframe(shown, hide_index=True)


def machine_section(run: RunRecord) -> None:
    """Hardware and environment, as recorded at start."""
    environment = {k: v for k, v in run.environment.items() if k != "all_packages"}
    for title, table in (("Hardware", run.hardware), ("Environment", environment)):
        with st.expander(title):
            flat = flatten(table)
            if flat:
                st.dataframe([{"key": k, "value": _format.text(v)} for k, v in flat.items()],
                             hide_index=True)
            else:
                st.caption("Nothing recorded.")
    packages = run.environment.get("all_packages")
    if packages:
        with st.expander(f"Installed packages ({len(packages)})"):
            st.dataframe(_packages(packages), hide_index=True)


def _packages(packages) -> list[dict[str, str]]:
    if isinstance(packages, dict):
        return [{"package": str(k), "version": str(v)} for k, v in sorted(packages.items())]
    return [{"package": str(p), "version": ""} for p in packages]
