"""Catalog: search the team's model and dataset cards, read one (sanitised), its runs and how
to reuse it; models sortable by their measured latency and accuracy."""

import streamlit as st

from dashboard import _format, _ui, data

STATUSES = ("any", "reviewed", "draft", "deprecated")
KINDS = {"any": None, "models": "model", "datasets": "dataset"}
COLUMNS = ("kind", "name", "version", "status", "project", "owner", "backbone", "latency_ms",
           "throughput", "accuracy", "summary")


def card_list() -> dict | None:
    """The search box and the matching cards; returns the card picked."""
    query = st.text_input("Search cards", key="card_q",
                          placeholder="scratch detector  status:reviewed  tag:line3")
    left, middle, right = st.columns(3)
    project = left.selectbox("Project", [_ui.ALL, *data.facets().projects], key="card_project")
    status = middle.selectbox("Status", STATUSES, key="card_status")
    kind = right.segmented_control("Kind", list(KINDS), default="any", key="card_kind")
    cards = data.catalog_cards(query, None if project == _ui.ALL else project,
                               None if status == "any" else status, KINDS.get(kind or "any"))
    if not cards:
        st.info("No card matches. Cards are indexed from the catalog folder with "
                "`cairn catalog index`.")
        return None
    st.caption(f"{len(cards)} card" + ("" if len(cards) == 1 else "s"))
    shown = [{k: c.get(k) for k in COLUMNS} for c in cards]
    event = st.dataframe(shown, hide_index=True, key="cards", on_select="rerun",
                         selection_mode="single-row", column_config={
                             "latency_ms": st.column_config.NumberColumn(
                                 "latency ms", format="%.3g",
                                 help="Best p50 at batch 1 of its inference profiles"),
                             "throughput": st.column_config.NumberColumn("images/s",
                                                                         format="%.4g"),
                             "accuracy": st.column_config.NumberColumn(format="%.4g")})
    picked = event.selection.rows
    refs = [f"{c['name']}@{c['version']}" for c in cards]
    default = refs.index(st.query_params["card"]) if st.query_params.get("card") in refs else 0
    ref = refs[picked[0]] if picked else st.selectbox("Card", refs, index=default,
                                                      key="card_ref")
    st.query_params["card"] = ref
    return cards[refs.index(ref)]


def card_view(summary: dict) -> None:
    card = data.catalog_card(summary["name"], summary["version"])
    st.header(_format.literal(f"{card['name']} {card['version']}"))
    st.caption(" · ".join(_format.literal(v) for v in (card["status"], card["project"],
                                                      card["owner"], card["backbone"]) if v))
    text, side = st.columns([3, 2])
    with text:
        st.html(card["html"])
    with side:
        st.subheader("Reuse")
        st.code(card["snippet"], language="bash" if card["kind"] == "dataset" else "python",
                wrap_lines=True)
        st.subheader("Runs")
        runs = data.known_runs(tuple(card["runs"]))
        if runs:
            _ui.runs_table(runs, _format.common_metrics(runs, limit=3))
            _ui.compare_link(runs)
        else:
            st.caption("The card names no runs.")


st.title("Catalog")
with _ui.guard():
    problem = data.catalog_problem()
    if problem:
        st.warning(f"The catalog is not available: {problem}.")
    else:
        chosen = card_list()
        if chosen is not None:
            card_view(chosen)
