"""Runs: the search language in a box, facets, a paged and sorted table; pick runs to compare."""

import streamlit as st

from dashboard import _format, _ui, data

SORTS = {"started": "Started", "name": "Name", "owner": "Owner", "duration": "Duration"}
PAGE_SIZES = (25, 50, 100)
EXAMPLE = 'val_acc >= 0.9 and params.lr < 1e-3 "mixup"'


def facet_choices() -> dict[str, list[str]]:
    """The facet values chosen, read before the facets are drawn (at the end of the page, so
    the table reaches the browser first)."""
    return {facet: st.session_state.get(f"f_{facet}", []) for facet in _format.FACET_FIELDS}


def facet_widgets(facets: data.Facets) -> None:
    side = st.sidebar
    side.header("Filter")
    labels = {h: f"{p} @ {h[:8]}" for p, h in facets.datasets}
    side.multiselect("Project", facets.projects, key="f_project")
    side.multiselect("Owner", facets.owners, key="f_owner")
    side.multiselect("Status", data.STATUSES, key="f_status")
    side.multiselect("Data version", list(labels), format_func=labels.get, key="f_data")
    side.multiselect("Backbone family", facets.families, key="f_backbone")


def sort_choice() -> str:
    keys = [*SORTS, *(f"metrics.{k}" for k in data.metric_keys())]
    left, right, size = st.columns([3, 2, 1])
    field = left.selectbox("Sort by", keys, format_func=lambda k: SORTS.get(k, k), key="sort")
    order = right.segmented_control("Order", ["Descending", "Ascending"], key="order",
                                    default="Descending")
    size.selectbox("Per page", PAGE_SIZES, index=1, key="page_size")
    return ("" if order == "Ascending" else "-") + field


def page_number(signature: tuple) -> int:
    """The page shown; back to the first whenever the query, sort or page size change."""
    if st.session_state.get("runs_signature") != signature:
        st.session_state["runs_signature"] = signature
        st.session_state["runs_page"] = 0
    return st.session_state.get("runs_page", 0)


def turn(delta: int) -> None:
    st.session_state["runs_page"] = max(0, st.session_state.get("runs_page", 0) + delta)


def pager(page: int, has_more: bool) -> None:
    back, where, forward = st.columns([1, 2, 1])
    back.button("← Previous", disabled=page == 0, on_click=turn, args=(-1,), key="prev")
    where.markdown(f"Page **{page + 1}**")
    forward.button("Next →", disabled=not has_more, on_click=turn, args=(1,), key="next")


def compare_button(selected: list) -> None:
    ids = [r.id for r in selected]
    if st.button(f"Compare {len(ids)} selected runs", disabled=len(ids) < 2, type="primary",
                 key="compare"):
        st.session_state["compare_refs"] = ids
        st.switch_page("app_pages/compare.py", query_params={"runs": ",".join(ids)})


def count_caption(query: str, shown: int, offset: int) -> None:
    found, capped = data.count_runs(query)
    total = f"{found:,}+" if capped else f"{found:,}"
    first = offset + 1 if shown else 0
    st.caption(f"Runs {first:,} to {offset + shown:,} of {total} matching", help=query or None)


st.title("Runs")
with _ui.guard():
    text = st.text_input("Search", key="q", placeholder=EXAMPLE,
                         help="Fields: params.KEY, metrics.KEY (or a bare metric name), "
                              "tags.KEY, data[.ROLE][.hash|.path], owner, project, status, "
                              "started, family...; and / or / not; free text in quotes.")
    query = _format.facet_query(text, facet_choices())
    sort = sort_choice()
    size = st.session_state.get("page_size", 50)
    page = page_number((query, sort, size))
    result = data.search_runs(query, sort, size, page * size)
    sort_metric = sort.lstrip("-").removeprefix("metrics.")
    metrics = _format.common_metrics(result.runs, first=[sort_metric])
    event = _ui.runs_table(result.runs, metrics, key="runs_table")
    selected = [result.runs[i] for i in event.selection.rows if i < len(result.runs)]
    pager(page, result.has_more)
    count_caption(query, len(result.runs), page * size)
    compare_button(selected)
with _ui.guard():  # drawn even after a bad query, so the chosen facets are kept
    facet_widgets(data.facets())
