"""Cairn's dashboard: a read-only Streamlit app over the workspace's registry store.

    cairn dashboard                  # http://127.0.0.1:8501
    cairn dashboard --port 9000 --base-url-path cairn   # behind a reverse proxy

Pages (``app_pages/``): Overview, Runs, Run (``/run?id=RUN``, reached from any run listed),
Compare, Overlap, Catalog, Zoo. ``data`` is the only
module that opens the store, and adds Streamlit's caches to the registry's reads and
``reads`` (the dashboard's own, without Streamlit); importing this package loads neither
Streamlit nor SQLAlchemy.
"""

__all__: list[str] = []
