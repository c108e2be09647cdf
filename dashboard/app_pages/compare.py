"""Compare: params side by side, metric curves overlaid, summaries, code, data and hardware."""

import streamlit as st

from dashboard import _charts, _format, _ui, data

SECTIONS = (("Code", "code", "code_differences"), ("Data", "data", "data_differences"),
            ("Hardware", "hardware", "hardware_differences"),
            ("Environment", "environment", "environment_differences"))


def chosen_refs() -> list[str]:
    """Runs from the Runs page, the URL (``?runs=a,b``) or typed here."""
    initial = st.session_state.pop("compare_refs", None) or [
        r for r in st.query_params.get("runs", "").split(",") if r]
    if initial:
        st.session_state["compare_text"] = ", ".join(initial)
    typed = st.text_input("Runs (ids, id prefixes or names, comma separated)",
                          key="compare_text")
    refs = [r.strip() for r in typed.split(",") if r.strip()]
    st.query_params["runs"] = ",".join(refs)
    return refs


def run_header(c, names: list[str]) -> None:
    st.dataframe([{"run": n, "id": _format.run_url(r.id), "project": r.project,
                   "owner": r.owner, "status": r.status, "started": _format.when(r.start_time),
                   "duration": _format.duration(r.duration)}
                  for n, r in zip(names, c.runs, strict=True)], hide_index=True,
                 column_config={"id": _ui.run_link_column()})


def groups_section(c, refs: list[str]) -> None:
    """When the runs belong to groups of seeds: each group against the first, on a metric."""
    metrics = _format.own_first(c.metrics)
    if not metrics:
        return
    primary = data.primary_metrics().get(c.runs[0].project, (None,))[0]
    metric = st.session_state.get("group_metric")
    if metric not in metrics:
        metric = primary if primary in metrics else next(
            (k for k in metrics if k.startswith(("val", "eval"))), metrics[0])
    found = data.seed_groups(tuple(refs), metric)
    if not any(g.runs > 1 for g in found.groups):
        return  # every run is a group of its own: nothing beyond the run-by-run view
    st.subheader("Groups of seeds")
    st.selectbox("Metric", metrics, index=metrics.index(metric), key="group_metric")
    st.dataframe([_group_row(g, found.chosen[g.key], metric) for g in found.groups],
                 hide_index=True)
    for verdict in found.verdicts:
        if isinstance(verdict, str):
            st.warning(_format.literal(verdict))
        else:
            line = f"{verdict.b.id} against {verdict.a.id}: {verdict.verdict}"
            (st.success if verdict.differs else st.info)(_format.literal(line))
            for note in verdict.notes:
                st.caption(_format.literal(note))
    if len(found.groups) < 2:
        st.caption("The runs are all of one group: pick runs of another group to compare.")


def _group_row(group, chosen: list[str], metric: str) -> dict:
    stats = group.metrics.get(metric)
    return {"group": group.id, "project": group.project, "runs": group.runs,
            "counted": group.n, "chosen here": len(chosen), "example": group.name or "",
            f"{metric} mean": stats.mean if stats else None,
            "std": stats.std if stats else None, "min": stats.min if stats else None,
            "max": stats.max if stats else None}


def params_section(c, names: list[str], only_diff: bool) -> None:
    st.subheader("Params")
    keys = c.param_differences if only_diff else list(c.params)
    if not keys:
        st.info("Every param is the same." if only_diff else "No params were logged.")
        return
    st.dataframe(_format.table_of(c.params, names, keys), hide_index=True)


def metrics_section(c, names: list[str], only_diff: bool) -> None:
    st.subheader("Metrics")
    keys = _format.own_first(c.metric_differences if only_diff else c.metrics)
    rows = [{"metric": k, "summary": part, **{
        n: _format.text(getattr(s, part) if s else None)
        for n, s in zip(names, c.metrics[k], strict=True)}}
        for k in keys for part in ("last", "min", "max")]
    if rows:
        st.dataframe(rows, hide_index=True)
    plotted = st.multiselect("Curves", _format.own_first(c.histories),
                             default=[k for k in _format.own_first(c.metric_differences)
                                      if k in c.histories and not k.startswith(_format.SYSTEM)
                                      ][:4],
                             key="curves")
    columns = st.columns(2)
    for i, key in enumerate(plotted):
        columns[i % 2].altair_chart(_charts.curves(key, c.histories[key], names),
                                    width="stretch")


def other_sections(c, names: list[str], only_diff: bool) -> None:
    if c.commits:
        st.markdown("**Commits:** " + ", ".join(f"`{x[:12]}`" for x in c.commits)
                    + (" (the code differs)" if c.code_differs else ""))
    for title, table, diffs in SECTIONS:
        keys = getattr(c, diffs) if only_diff else list(getattr(c, table))
        with st.expander(f"{title}: {len(getattr(c, diffs))} differences",
                         expanded=bool(getattr(c, diffs)) and title != "Environment"):
            if keys:
                st.dataframe(_format.table_of(getattr(c, table), names, keys), hide_index=True)
            else:
                st.caption("All the same.")


st.title("Compare")
with _ui.guard():
    refs = chosen_refs()
    if len(refs) < 2:
        st.info("Pick two or more runs on the Runs page, or type their ids or names above.")
    else:
        c = data.comparison(tuple(refs))
        names = [_format.label(r) for r in c.runs]
        run_header(c, names)
        groups_section(c, refs)
        only_diff = st.toggle("Only differences", value=True, key="only_diff")
        params_section(c, names, only_diff)
        metrics_section(c, names, only_diff)
        other_sections(c, names, only_diff)
