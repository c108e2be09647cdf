"""The server's entry point when sign-in is configured: ``streamlit_app.py`` as an ``st.App``
given Streamlit's ``[auth]`` secrets in memory, read from the environment when the server
starts (``cairn dashboard`` runs ``streamlit run`` on this file; Streamlit finds ``app``)."""

from pathlib import Path

import streamlit as st

from dashboard._service import server_secrets

app = st.App(Path(__file__).with_name("streamlit_app.py"), secrets=server_secrets())
