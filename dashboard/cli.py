"""``cairn dashboard``: serve the dashboard on the workspace's store, read-only.

Plugged into ``cairn`` through the ``cairn.commands`` entry point. The command replaces
itself with ``streamlit run`` (so stopping its pid stops the server), passing the store URL
and the configuration file in ``CAIRN_STORE`` and ``CAIRN_CONFIG``. It starts the same way
from a terminal, a service manager or a container (:mod:`dashboard._service`): no prompt,
no browser unless asked, no usage statistics.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import click

from dashboard._service import check_exposure, server_env, streamlit_command
from dashboard._service_auth import SignIn, sign_in
from dashboard.errors import NoStoreError
from registry.config import Workspace, load_workspace
from registry.errors import CairnError

__all__ = ["dashboard", "streamlit_command"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than loopback needs sign-in "
                   "([dashboard.auth]) or --no-auth.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@click.option("--base-url-path", default="", metavar="PATH",
              help="Serve under this path (behind a reverse proxy), e.g. 'cairn'.")
@click.option("--browser", "--open", "browser", is_flag=True,
              help="Open a browser on the dashboard.")
@click.option("--headless", "--no-browser", "headless", is_flag=True, hidden=True,
              help="Do not open a browser (the default; kept for old scripts).")
@click.option("--no-auth", is_flag=True,
              help="Serve other machines without sign-in, on purpose.")
def dashboard(host: str, port: int, base_url_path: str, browser: bool, headless: bool,
              no_auth: bool) -> None:
    """Serve the dashboard (runs, comparisons, overlap, catalog, zoo) on the workspace's
    store. It only reads: the store is opened read-only. Health: /_stcore/health."""
    if importlib.util.find_spec("streamlit") is None:
        raise click.ClickException("the dashboard needs Streamlit: pip install 'cairn[dashboard]'")
    try:
        ws = load_workspace()
        signin = sign_in(ws)
        check_exposure(host, signin, no_auth=no_auth)
        callback = _checked_callback(signin, host, port, base_url_path)
        _check_store(ws)
    except CairnError as exc:
        raise click.ClickException(str(exc)) from exc
    args = streamlit_command(host=host, port=port, headless=headless or not browser,
                             base_url_path=base_url_path, signed=signin is not None)
    env = server_env(dict(os.environ), ws, callback_url=callback)
    click.echo(f"Cairn dashboard on http://{_url_host(host)}:{port}/{base_url_path.strip('/')}"
               f" (store {_shown(ws.store_url)}, read-only"
               f"{', sign-in required' if signin else ''})", err=True)
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(args[0], args, env)
    sys.exit(subprocess.call(args, env=env))


def _checked_callback(signin: SignIn | None, host: str, port: int, base: str) -> str | None:
    """The sign-in callback URL, once the secrets the server will need are known to be set."""
    if signin is None:
        return None
    signin.secrets(os.environ)
    _check_authlib()
    return signin.callback_url(host, port, base)


def _check_authlib() -> None:
    from streamlit.auth_util import is_authlib_installed

    if not is_authlib_installed():
        raise click.ClickException("sign-in needs Authlib 1.3.2 or later: "
                                   "pip install 'cairn[dashboard]'")


def _check_store(ws: Workspace) -> None:
    from registry.store import sqlite_path

    path = sqlite_path(ws.store_url)
    if ws.store_url.startswith("sqlite") and (path is None or not os.path.exists(path)):
        raise NoStoreError(ws.store_url)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _shown(url: str) -> str:
    from registry.store import safe_url

    return safe_url(url)
