"""The dashboard's router: ``streamlit run dashboard/streamlit_app.py`` (``cairn dashboard``
does it with the workspace's store). Each page is a script under ``app_pages/``: a folder
named ``pages/`` beside this script would put Streamlit in its older multipage mode, which
builds the menu from that folder and never runs ``st.navigation``."""

import streamlit as st

from dashboard._auth import require_sign_in

st.set_page_config(page_title="Cairn", page_icon=":material/landscape:", layout="wide")
require_sign_in()

PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:",
            default=True),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/search:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/overlap.py", title="Overlap", icon=":material/join_inner:"),
    st.Page("app_pages/catalog.py", title="Catalog", icon=":material/menu_book:"),
    st.Page("app_pages/zoo.py", title="Zoo", icon=":material/pets:"),
    st.Page("app_pages/run.py", title="Run", icon=":material/timeline:", url_path="run",
            visibility="hidden"),
]

st.navigation(PAGES).run()
