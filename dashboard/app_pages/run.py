"""Run: one run in full, at ``/run?id=RUN`` (an id, id prefix or name): its header and
warnings, metric curves (system metrics apart), cost and energy, code, data, params, machine,
artifacts, and what it relates to: MoV measured with it, the runs it repeats or resembles,
the cards built from it, its MLflow run."""

import streamlit as st

from dashboard import _charts, _format, _run_files, _run_record, _ui, data
from dashboard._curves import buckets_for
from dashboard._format import SYSTEM, literal
from registry.errors import AmbiguousRunError, RunNotFoundError

AXES = {"step": "Step", "time": "Wall time"}
CURVES_SHOWN = 4  # curves drawn when the page opens
SIMILAR = 10


def chosen_ref() -> str:
    """The run named in the URL (``?id=``), or typed here when the URL names none."""
    ref = st.query_params.get("id", "").strip()
    if ref:
        return ref
    st.title("Run")
    typed = st.text_input("Run (id, id prefix or name)", key="run_ref").strip()
    if typed:
        st.query_params["id"] = typed
        st.rerun()  # drawn again from the URL, as a shared link would be
    st.info("Open a run from the Runs page, or type its id, id prefix or name above.")
    return ""


def default_curves(keys: list[str]) -> list[str]:
    """Validation metrics first, then the rest; never the usage figures of the cost block."""
    drawn = [k for k in keys if k not in _run_record.USAGE]
    return sorted(drawn, key=lambda k: (not k.startswith(("val", "eval")), k))[:CURVES_SHOWN]


def curves_section(pk: int, run) -> None:
    """Curves chosen from a list, on a step or wall-time axis, several per chart; summaries
    beneath from the store (every point, never the thinned ones). The chart is drawn before
    its controls (placed above it), from their values in the session: the browser gets the
    chart first and starts loading its code sooner."""
    st.subheader("Metrics")
    own = [k for k in _format.own_first(run.metrics) if not k.startswith(SYSTEM)]
    system = own_first_system(run.metrics)
    if not own and not system:
        st.caption("No metrics were logged.")
        return
    controls = st.container()
    axis = st.session_state.get("run_axis") or "step"
    split = bool(st.session_state.get("run_split"))
    if own:
        shown = default_curves(own)
        draw(pk, [k for k in st.session_state.get("run_curves", shown) if k in own], axis, split)
        summaries(run, [k for k in own if k not in _run_record.USAGE])
    with controls:
        left, right = st.columns([3, 1])
        left.segmented_control("x axis", list(AXES), format_func=AXES.get, default="step",
                               key="run_axis")
        right.toggle("One chart per metric", key="run_split")
        if own:
            st.multiselect("Curves", own, default=shown, key="run_curves")
    if system:
        with st.expander(f"System: {len(system)} metrics (CPU, memory, disk, network, GPU)"):
            picked = st.multiselect("System metrics", system, key="run_system",
                                    default=[k for k in system if k.endswith("/util")][:4])
            draw(pk, picked, axis, split=True)
            summaries(run, system)


def own_first_system(keys) -> list[str]:
    """The sampler's metrics, GPUs before the host's (their utilisation first)."""
    found = [k for k in keys if k.startswith(SYSTEM)]
    return sorted(found, key=lambda k: ("/gpu" not in k, not k.endswith("/util"), k))


def draw(pk: int, keys: list[str], axis: str, split: bool) -> None:
    if not keys:
        return
    curves = data.run_curves(pk, tuple(keys), axis, buckets_for(len(keys)))
    if split:
        columns = st.columns(2)
        for i, key in enumerate(keys):
            columns[i % 2].altair_chart(_charts.history(curves.only(key), axis, title=key,
                                                        height=240), width="stretch")
    else:
        st.altair_chart(_charts.history(curves, axis), width="stretch")
    bad = {k: n for k, n in curves.nonfinite_in.items() if n}
    if bad:
        st.caption(literal("NaN or infinite points, drawn as dashed red rules at their "
                           f"{AXES[axis].lower()}: " + ", ".join(f"{k} {n:,}"
                                                                 for k, n in bad.items())))
    drawn = curves.points["metric"].value_counts()
    if any(n - curves.nonfinite_in[k] > drawn.get(k, 0) for k, n in curves.points_in.items()):
        st.caption(f"Long histories are drawn from the lowest and highest point of each of "
                   f"{buckets_for(len(keys)):,} stretches; the figures below count every "
                   "point.")


def summaries(run, keys: list[str]) -> None:
    """Last, min and max of every point, as the store summarised them."""
    st.dataframe([{"metric": k, "last": _format.text(s.last), "min": _format.text(s.min),
                   "max": _format.text(s.max), "points": s.count,
                   "NaN or inf": s.nonfinite_count, "last step": s.last_step}
                  for k, s in ((k, run.metrics[k]) for k in keys)], hide_index=True)


def related_section(pk: int, run) -> None:
    """MoV measured with the run, runs it repeats or resembles, cards built from it, MLflow."""
    st.subheader("Related")
    measured = data.run_mov(pk)
    if measured:
        st.markdown("**Measured organisational value**")
        st.dataframe([{"MoV": m.name, "value": m.value, "unit": m.unit, "who": m.who,
                       "when": _format.when(m.time), "evidence": m.evidence or ""}
                      for m in measured], hide_index=True)
    similar_runs(pk, run)
    cards(run)
    mlflow(run, data.mlflow_links(pk))


def similar_runs(pk: int, run) -> None:
    st.markdown("**Has this been tried?** Runs this one repeats or resembles")
    priors = data.similar_runs(pk, run)
    if not priors:
        st.caption("No earlier or later run is like this one.")
        return
    metric = data.primary_metrics().get(run.project)
    st.dataframe([{
        "run": p.run.name or "", "id": _format.run_url(p.run.id), "owner": p.run.owner,
        "started": _format.when(p.run.start_time), "status": p.run.status,
        "match": "same experiment" if p.exact else f"similar ({p.score:.2f})",
        "outcome": _format.metric_text(p.run, metric),
        "differs in": ", ".join(f"{k}: {_format.text(a)} vs {_format.text(b)}"
                                for k, (a, b) in p.differences.items()),
        "seeds": f"{p.group.runs} runs" if p.group is not None else ""}
        for p in priors], hide_index=True, key="similar_runs",
        column_config={"id": _ui.run_link_column(),
                       "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    ids = [run.id, *(p.run.id for p in priors[:5])]
    st.page_link("app_pages/compare.py", label=f"Compare with these {len(ids) - 1} runs",
                 icon=":material/compare_arrows:", query_params={"runs": ",".join(ids)})


def cards(run) -> None:
    if data.catalog_problem():
        return
    built = [c for c in data.cards_of_runs() if any(_format.names_run(r, run) for r in c["runs"])]
    if built:
        st.markdown("**Model cards built from this run**")
    for card in built:
        st.page_link("app_pages/catalog.py", icon=":material/menu_book:",
                     label=literal(f"{card['name']} {card['version']} ({card['status']})"),
                     query_params={"card": f"{card['name']}@{card['version']}"})


def mlflow(run, links: list[tuple[str, str, str]]) -> None:
    if not links and not run.mlflow_run_id:
        return
    st.markdown("**MLflow**")
    for uri, experiment, mlflow_id in links:
        if uri.startswith(("http://", "https://")):
            st.link_button(f"MLflow run {mlflow_id[:8]}", icon=":material/open_in_new:",
                           url=f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{mlflow_id}")
        else:
            st.caption(literal(f"MLflow run {mlflow_id} of experiment {experiment} at {uri}"))
    if not links:
        st.caption(literal(f"MLflow run {run.mlflow_run_id}"))


def run_page(ref: str) -> None:
    try:
        pk, run = data.run(ref)
    except (RunNotFoundError, AmbiguousRunError) as exc:
        st.title("Run")
        st.error(literal(f"{exc}. Runs are named by id, id prefix (4 digits or more) or "
                         "name: pick one on the Runs page."))
        return
    _run_record.header(run)
    st.page_link("app_pages/compare.py", label="Compare with...",
                 icon=":material/compare_arrows:", query_params={"runs": run.id})
    curves_section(pk, run)
    _run_record.cost_section(run)
    _run_files.artifacts_section(run)
    _run_record.code_section(run)
    _run_record.data_section(run)
    _run_record.params_section(run)
    _run_record.machine_section(run)
    related_section(pk, run)


with _ui.guard():
    chosen = chosen_ref()
    if chosen:
        run_page(chosen)
