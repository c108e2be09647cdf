"""``cairn dashboard``: serve the dashboard on the workspace's store, read-only.

Plugged into ``cairn`` through the ``cairn.commands`` entry point. The command replaces
itself with ``streamlit run`` (so stopping its pid stops the server), passing the store URL
and the configuration file in ``CAIRN_STORE`` and ``CAIRN_CONFIG``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click

from dashboard.errors import NoStoreError
from registry.config import Workspace, load_workspace
from registry.errors import CairnError

__all__ = ["APP", "dashboard", "streamlit_command"]

APP = Path(__file__).with_name("streamlit_app.py")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to serve other machines).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@click.option("--headless", "--no-browser", "headless", is_flag=True,
              help="Do not open a browser (servers, CI).")
def dashboard(host: str, port: int, headless: bool) -> None:
    """Serve the dashboard (runs, comparisons, overlap, catalog, zoo) on the workspace's
    store. It only reads: the store is opened read-only."""
    if importlib.util.find_spec("streamlit") is None:
        raise click.ClickException("the dashboard needs Streamlit: pip install 'cairn[dashboard]'")
    try:
        ws = load_workspace()
        _check_store(ws)
    except CairnError as exc:
        raise click.ClickException(str(exc)) from exc
    args = streamlit_command(host=host, port=port, headless=headless)
    env = {**os.environ, "CAIRN_STORE": ws.store_url}
    if ws.config_file is not None:
        env["CAIRN_CONFIG"] = str(ws.config_file)
    click.echo(f"Cairn dashboard on http://{host}:{port} (store {_shown(ws.store_url)}, "
               "read-only)", err=True)
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(args[0], args, env)
    sys.exit(subprocess.call(args, env=env))


def streamlit_command(*, host: str, port: int, headless: bool) -> list[str]:
    """The ``streamlit run`` command line: no file watcher, no usage statistics. ``-P`` keeps
    the working directory off ``sys.path``: a workspace's ``catalog/`` folder of cards would
    otherwise shadow the catalog package."""
    return [sys.executable, "-P", "-m", "streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true" if headless else "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]


def _check_store(ws: Workspace) -> None:
    from registry.store import sqlite_path

    path = sqlite_path(ws.store_url)
    if ws.store_url.startswith("sqlite") and (path is None or not os.path.exists(path)):
        raise NoStoreError(ws.store_url)


def _shown(url: str) -> str:
    from registry.store import safe_url

    return safe_url(url)
