"""Widgets several pages share: the error guard, the project picker, the runs table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import streamlit as st

from dashboard import _format, data
from registry.entities import RunRecord
from registry.errors import CairnError

__all__ = ["ALL", "RUN_PAGE", "compare_link", "guard", "project_picker", "run_link_column",
           "runs_table"]

ALL = "All projects"
RUN_PAGE = "app_pages/run.py"


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Show Cairn's own errors (a bad query, a missing store) as a message, not a traceback."""
    try:
        yield
    except CairnError as exc:
        st.error(str(exc))


def project_picker(key: str, *, sidebar: bool = True) -> str | None:
    """A project selector; None stands for every project."""
    where = st.sidebar if sidebar else st
    chosen = where.selectbox("Project", [ALL, *data.facets().projects], key=key)
    return None if chosen == ALL else chosen


def runs_table(runs: Sequence[RunRecord], metrics: Sequence[str], *, key: str | None = None,
               height: int | str = "auto"):
    """Runs as a table; with ``key`` the rows can be selected (returns the selection event)."""
    rows = _format.run_rows(runs, metrics)
    config = {"started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
              "id": run_link_column(),
              **{m: st.column_config.NumberColumn(format="%.4g") for m in metrics}}
    if key is None:
        return st.dataframe(rows, hide_index=True, column_config=config, height=height)
    return st.dataframe(rows, hide_index=True, column_config=config, height=height, key=key,
                        on_select="rerun", selection_mode="multi-row")


def run_link_column(label: str = "id"):
    """A table column of run page addresses (``_format.run_url``), shown as short ids."""
    return st.column_config.LinkColumn(label, display_text=_format.RUN_LINK_TEXT,
                                       help="Open the run's page")


def compare_link(runs: Sequence[RunRecord], limit: int = 6) -> None:
    """A link to the Compare page with these runs (the first ``limit`` of them)."""
    if len(runs) > 1:
        st.page_link("app_pages/compare.py", label="Compare these runs",
                     icon=":material/compare_arrows:",
                     query_params={"runs": ",".join(r.id for r in runs[:limit])})
