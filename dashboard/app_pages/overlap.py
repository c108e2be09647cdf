"""Overlap: experiments that repeat, or nearly repeat, each other across people: who, when,
with what outcome. The view that saves duplicated effort."""

import streamlit as st

from dashboard import _format, _ui, data

WINDOWS = {30: "last 30 days", 90: "last 90 days", 365: "last year", 36500: "all time"}


def group_table(group, metric) -> None:
    st.dataframe([{
        "run": r.name or "", "id": _format.run_url(r.id), "owner": r.owner,
        "started": _format.when(r.start_time), "status": r.status,
        "outcome": _format.metric_text(r, metric)} for r in group.runs],
        hide_index=True, column_config={"id": _ui.run_link_column(),
                                        "started": st.column_config.DatetimeColumn(
                                            format="YYYY-MM-DD HH:mm")})
    _ui.compare_link(group.runs)


def title_of(group) -> str:
    first, last = group.first, group.last
    span = f"{first.started:%Y-%m-%d} → {last.started:%Y-%m-%d}"
    kind = "same experiment" if group.exact else f"similar ({group.score:.2f})"
    return (f"{kind}: {len(group.runs)} runs by {', '.join(group.owners)} · {span} · "
            f"{first.name or _format.short(first.id)}")


def exact_section(project, days: int, metrics) -> None:
    st.subheader("Run again: the same code, params and data")
    mine_too = st.toggle("Include repeats by the same person", key="mine_too")
    groups = data.exact_duplicates(project, days, across_owners=not mine_too)
    if not groups:
        st.caption("No experiment was run twice in this window.")
        return
    repeats = sum(len(g.runs) - 1 for g in groups)
    st.caption(f"{len(groups)} experiments run more than once; {repeats} runs repeated "
               "an earlier one.")
    for group in groups:
        with st.expander(title_of(group)):
            group_table(group, metrics.get(group.first.project))


def near_section(project, days: int, metrics) -> None:
    st.subheader("Nearly the same, by different people")
    groups = data.near_duplicates(project, days)
    if not groups:
        st.caption("No near duplicates among the newest runs of this window.")
        return
    for group in groups:
        with st.expander(title_of(group)):
            st.caption("Alike: " + "; ".join(group.reasons))
            if group.differences:
                names = [_format.label(r) for r in group.runs]
                st.dataframe(_format.table_of(group.differences, names), hide_index=True)
            group_table(group, metrics.get(group.first.project))


st.title("Overlap")
with _ui.guard():
    chosen = _ui.project_picker("overlap_project")
    days = st.sidebar.selectbox("Window", list(WINDOWS), format_func=WINDOWS.get, index=1,
                                key="overlap_window")
    metrics = data.primary_metrics()
    exact_section(chosen, days, metrics)
    near_section(chosen, days, metrics)
