"""Overview: MoV against baseline and target, runs per week, who works on what, recent
activity and the best models, per project."""

import streamlit as st

from dashboard import _charts, _format, _ui, data


def mov_section(project: str | None) -> None:
    st.subheader("Measured organisational value")
    progress = data.mov_progress(project)
    if not progress:
        st.caption("No MoV defined" + (f" for {project}." if project else ".")
                   + " Declare one under [projects.NAME.mov.KEY] in cairn.toml.")
        return
    columns = st.columns(min(len(progress), 2))
    for i, p in enumerate(progress):
        with columns[i % len(columns)]:
            done = "—" if p.percent_to_target is None else f"{p.percent_to_target:.0f}%"
            st.metric(f"{p.project} · {p.name} ({p.unit}, {p.direction} is better)",
                      "not measured" if p.best is None else f"{p.best:g}",
                      delta=f"{done} of the way from {p.baseline:g} to {p.target:g}",
                      delta_color="off")
            st.altair_chart(_charts.mov(p), width="stretch")
            if p.stakeholder or p.description:
                st.caption(" — ".join(filter(None, [p.stakeholder, p.description])))


def value_section(project: str | None) -> None:
    """What each project has spent so far and how far each MoV moved per 100 of it."""
    found = [v for v in data.value_for_money(project) if v.costed_runs or v.uncosted_runs]
    if not any(v.costed_runs for v in found):
        return
    st.subheader("Value for money")
    rows = []
    for v in found:
        unit = v.currency or "currency units"
        row = {"project": v.project, "spent": f"{v.total_cost:,.2f} {v.currency}".strip(),
               "runs costed": v.costed_runs, "runs without a cost": v.uncosted_runs}
        for name, per_100 in v.per_100.items():
            row[f"{name}: points per 100 {unit}"] = per_100
        rows.append(row)
    st.dataframe(rows, hide_index=True)
    st.caption("Points: percentage points of the way from a MoV's baseline to its target, "
               "per 100 spent. Runs without a cost (no prices, or a price missing) are "
               "counted apart, never taken as free.")


def activity_section(project: str | None) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Runs per week")
        weekly = data.weekly_runs(project)
        if weekly:
            st.altair_chart(_charts.weekly(weekly), width="stretch")
        else:
            st.caption("No runs yet.")
    with right:
        st.subheader("Who is working on what (last 30 days)")
        rows = data.activity(project)
        st.dataframe([{**r, "last": _format.when(r["last"])} for r in rows], hide_index=True,
                     column_config={"last": st.column_config.DatetimeColumn(
                         "last run", format="YYYY-MM-DD HH:mm")}, height=260)


def best_section(project: str | None) -> None:
    st.subheader("Best models")
    metrics = data.primary_metrics()
    projects = [project] if project else list(metrics)
    rows = []
    for name in projects:
        metric = metrics.get(name)
        rows += [{"project": name, "metric": metric[0] if metric else "",
                  "final value": _format.last_value(r, metric[0] if metric else None),
                  "run": r.name or "", "id": _format.run_url(r.id), "owner": r.owner,
                  "started": _format.when(r.start_time)} for r in data.best_runs(name)]
    if rows:
        st.dataframe(rows, hide_index=True, column_config={"id": _ui.run_link_column()})
    else:
        st.caption("No finished runs with a metric to rank them by.")


def recent_section(project: str | None) -> None:
    st.subheader("Recent activity")
    runs = data.recent_runs(project)
    _ui.runs_table(runs, _format.common_metrics(runs, limit=3))


st.title("Overview")
with _ui.guard():
    chosen = _ui.project_picker("overview_project")
    mov_section(chosen)
    value_section(chosen)
    activity_section(chosen)
    best_section(chosen)
    recent_section(chosen)
