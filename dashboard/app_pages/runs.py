"""Runs: the search language in a box, facets, a paged and sorted table; pick runs to compare."""

import streamlit as st

from dashboard import _format, _ui, data

SORTS = {"started": "Started", "name": "Name", "owner": "Owner", "duration": "Duration"}
PAGE_SIZES = (25, 50, 100)
EXAMPLE = 'val_acc >= 0.9 and params.lr < 1e-3 "mixup"'
COUNT_WAIT_S = 0.1


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


def sort_keys() -> list[str]:
    return [*SORTS, *(f"metrics.{k}" for k in data.metric_keys())]


def sort_choice(keys: list[str]) -> str:
    """The sort chosen, read before its widgets are drawn (after the table)."""
    field = st.session_state.get("sort")
    order = st.session_state.get("order", "Descending")
    return ("" if order == "Ascending" else "-") + (field if field in keys else keys[0])


def controls(keys: list[str]) -> None:
    st.text_input("Search", key="q", placeholder=EXAMPLE,
                  help="Fields: params.KEY, metrics.KEY (or a bare metric name), tags.KEY, "
                       "data[.ROLE][.hash|.path], owner, project, status, started, "
                       "family...; and / or / not; free text in quotes.")
    left, right, size = st.columns([3, 2, 1])
    left.selectbox("Sort by", keys, format_func=lambda k: SORTS.get(k, k), key="sort")
    right.segmented_control("Order", ["Descending", "Ascending"], key="order",
                            default="Descending")
    size.selectbox("Per page", PAGE_SIZES, index=1, key="page_size")


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
    """Compare the runs ticked; one run ticked can also be opened (as its id links do)."""
    ids = [r.id for r in selected]
    left, right = st.columns([1, 3])
    if left.button(f"Compare {len(ids)} selected runs", disabled=len(ids) < 2, type="primary",
                   key="compare"):
        st.session_state["compare_refs"] = ids
        st.switch_page("app_pages/compare.py", query_params={"runs": ",".join(ids)})
    if len(selected) == 1:
        right.page_link(_ui.RUN_PAGE, label=_format.literal(f"Open {_format.label(selected[0])}"),
                        icon=":material/open_in_new:", query_params={"id": ids[0]})


def count_caption(slot, query: str, shown: int, offset: int, has_more: bool) -> None:
    """How many runs match, in ``slot``: known at once on the last page; otherwise counted in
    a background thread and awaited last, in short waits that each send the caption (a point
    where Streamlit stops the script for the next search), so a slow count holds up neither
    the table nor the next search."""
    first = offset + 1 if shown else 0
    line = f"Runs {first:,} to {offset + shown:,} of {{}} matching{{}}"
    if not has_more:
        slot.caption(line.format(f"{offset + shown:,}", ""), help=query or None)
        return
    future = data.counting(query)
    while True:
        try:
            found, capped = future.result(timeout=COUNT_WAIT_S)
            break
        except TimeoutError:
            slot.caption(line.format(f"{offset + shown + 1:,}+", " (counting…)"),
                         help=query or None)
    total = f"{found:,}+" if capped else f"{found:,}"
    slot.caption(line.format(total, ""), help=query or None)


st.title("Runs")
# The table is built first, from the widgets' values in the session state, and the search
# box and sort widgets are drawn above it afterwards: the browser gets the table's data (and
# starts loading the grid's code) before the widgets'.
above, counted = st.container(), None
with _ui.guard():
    keys = sort_keys()
    query = _format.facet_query(st.session_state.get("q", ""), facet_choices())
    sort = sort_choice(keys)
    size = st.session_state.get("page_size", 50)
    page = page_number((query, sort, size))
    result = data.search_runs(query, sort, size, page * size)
    sort_metric = sort.lstrip("-").removeprefix("metrics.")
    metrics = _format.common_metrics(result.runs, first=[sort_metric])
    event = _ui.runs_table(result.runs, metrics, key="runs_table")
    selected = [result.runs[i] for i in event.selection.rows if i < len(result.runs)]
    pager(page, result.has_more)
    counted = (st.empty(), query, len(result.runs), page * size, result.has_more)
    compare_button(selected)
with above, _ui.guard():  # drawn even after a bad query, so the query can be mended
    controls(sort_keys())
with _ui.guard():  # drawn even after a bad query, so the chosen facets are kept
    facet_widgets(data.facets())
if counted is not None:
    with _ui.guard():  # last: the only step that may wait
        count_caption(*counted)
