"""How ``cairn dashboard`` starts Streamlit as a service: the command line, the environment
the server inherits, and the refusal to serve other machines without sign-in.

The server never prompts (Streamlit's first-run e-mail prompt is off and it runs headless
unless a browser is asked for), sends no usage statistics, and needs no terminal and no
home folder of its own. With sign-in configured it runs :mod:`dashboard._service_app`, an
``st.App`` that gives Streamlit its ``[auth]`` secrets in memory: the secrets go from the
environment to the server process and nowhere else (no file, no command line).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashboard._service_auth import SignIn, sign_in, streamlit_secrets
from dashboard.errors import DashboardError
from registry.config import Workspace, load_workspace

__all__ = ["APP", "CALLBACK_ENV", "SIGNED_APP", "check_exposure", "is_loopback",
           "server_env", "server_secrets", "streamlit_command"]

APP = Path(__file__).with_name("streamlit_app.py")
SIGNED_APP = Path(__file__).with_name("_service_app.py")
#: Where the server finds its sign-in callback URL (not a secret: the provider knows it).
CALLBACK_ENV = "CAIRN_DASHBOARD_CALLBACK"


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(host: str, signin: SignIn | None, *, no_auth: bool) -> None:
    """Refuse to serve other machines without sign-in, unless ``--no-auth`` says so."""
    if signin is not None and no_auth:
        raise DashboardError("--no-auth contradicts the sign-in configured in [dashboard.auth]:"
                             " remove one of them")
    if signin is None and not no_auth and not is_loopback(host):
        raise DashboardError(
            f"refusing to serve the dashboard on {host} without sign-in: anyone who reaches "
            "the port would see every project. Configure [dashboard.auth] in the workspace "
            "configuration, or pass --no-auth to serve it open on purpose")


def streamlit_command(*, host: str, port: int, headless: bool = True,
                      base_url_path: str = "", signed: bool = False) -> list[str]:
    """The ``streamlit run`` command line: no prompt, no usage statistics, no file watcher.
    ``-P`` keeps the working directory off ``sys.path``: a workspace's ``catalog/`` folder of
    cards would otherwise shadow the catalog package."""
    script = SIGNED_APP if signed else APP
    base = ["--server.baseUrlPath", base_url_path.strip("/")] if base_url_path.strip("/") else []
    return [sys.executable, "-P", "-m", "streamlit", "run", str(script),
            "--server.address", host, "--server.port", str(port), *base,
            "--server.headless", "true" if headless else "false",
            "--server.showEmailPrompt", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]


def server_env(base: dict[str, str], ws: Workspace, *, callback_url: str | None) -> dict[str, str]:
    """The server's environment: the store, the configuration file, the sign-in callback."""
    env = {**base, "CAIRN_STORE": ws.store_url}
    if ws.config_file is not None:
        env["CAIRN_CONFIG"] = str(ws.config_file)
    if callback_url is not None:
        env[CALLBACK_ENV] = callback_url
    return env


def server_secrets(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """In the server process: Streamlit's ``[auth]`` secrets, from the workspace's sign-in
    settings and the environment that ``cairn dashboard`` checked and handed down."""
    env = os.environ if env is None else env
    settings = sign_in(load_workspace(env=env))
    callback = env.get(CALLBACK_ENV)
    if settings is None or not callback:
        raise DashboardError(f"{SIGNED_APP.name} serves the dashboard with sign-in: start it "
                             "with `cairn dashboard` in a workspace with [dashboard.auth]")
    return streamlit_secrets(settings, callback_url=callback, env=env)
