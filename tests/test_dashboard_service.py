"""``cairn dashboard`` as a service: it starts with no terminal, stdin closed and an empty home
folder (as systemd, a container or ``nohup`` start it), serves its health check (also under a
reverse proxy's base path), and refuses to serve other machines without sign-in."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard._service import APP, SIGNED_APP, check_exposure, is_loopback, streamlit_command
from dashboard._service_auth import SignIn
from dashboard.cli import dashboard
from dashboard.errors import DashboardError
from tests.test_dashboard_browser import free_port, stop, wait_healthy

CAIRN = Path(sys.executable).with_name("cairn")
SIGN_IN = SignIn(server_metadata_url="http://127.0.0.1:1/.well-known/openid-configuration",
                 client_id="cairn", allowed_domains=frozenset({"example.com"}))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace made by ``cairn init`` with an empty store (``cairn dashboard`` needs one)."""
    from registry.config import load_workspace

    subprocess.run([str(CAIRN), "init"], cwd=tmp_path, check=True, capture_output=True,
                   env=_bare_env(tmp_path / "home"))
    load_workspace(tmp_path).open_store()  # creates and migrates the SQLite file
    return tmp_path


def _bare_env(home: Path) -> dict[str, str]:
    """What a service manager gives: a PATH and a home folder that is empty; no terminal."""
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.mark.slow
@pytest.mark.parametrize("base_path", ["", "cairn"])
def test_starts_with_stdin_closed_no_terminal_and_an_empty_home(workspace, tmp_path, base_path):
    port, home = free_port(), tmp_path / "home"
    extra = ["--base-url-path", base_path] if base_path else []
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(CAIRN), "dashboard", "--port", str(port), *extra],
                                  cwd=workspace, env=_bare_env(home), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}" + (f"/{base_path}" if base_path else "")
    try:
        wait_healthy(base, server, timeout=60)
        if base_path:  # only under the base path
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5)
    finally:
        stop(server)
    text = log.read_text()
    assert "Email" not in text and "Welcome to Streamlit" not in text, text
    assert "usage statistics" not in text.lower(), text  # off, so not announced either
    assert not any(home.iterdir()), "the server wrote into the home folder"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_serve_without_sign_in(host):
    assert is_loopback(host)
    check_exposure(host, None, no_auth=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.20", "fe80::1",
                                  "2001:db8::1", "dashboard.example.com", ""])
def test_other_addresses_need_sign_in_or_no_auth(host):
    assert not is_loopback(host)
    with pytest.raises(DashboardError, match=r"without sign-in.*--no-auth"):
        check_exposure(host, None, no_auth=False)
    check_exposure(host, None, no_auth=True)  # said on purpose
    check_exposure(host, SIGN_IN, no_auth=False)  # everyone signs in


def test_no_auth_with_sign_in_configured_is_a_contradiction():
    with pytest.raises(DashboardError, match="--no-auth contradicts"):
        check_exposure("127.0.0.1", SIGN_IN, no_auth=True)


def test_cairn_dashboard_on_every_interface_without_sign_in_refuses_to_start(workspace):
    """A real run: it exits non-zero before Streamlit starts (nothing binds 0.0.0.0)."""
    done = subprocess.run([str(CAIRN), "dashboard", "--host", "0.0.0.0", "--port",
                           str(free_port())], cwd=workspace, env=_bare_env(workspace / "home"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert "refusing to serve the dashboard on 0.0.0.0 without sign-in" in done.stderr
    assert "--no-auth" in done.stderr and "Streamlit" not in done.stdout + done.stderr


class Exec(Exception):
    """Raised in place of ``os.execve``: the command the CLI would become."""


@pytest.fixture
def captured_exec(monkeypatch) -> list[tuple[list[str], dict[str, str]]]:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def execve(path, args, env):
        calls.append((list(args), dict(env)))
        raise Exec

    monkeypatch.setattr(os, "execve", execve)
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_no_auth_serves_every_interface_on_purpose(workspace, monkeypatch, captured_exec,
                                                   host):
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(dashboard, ["--host", host, "--no-auth"])
    assert isinstance(result.exception, Exec), result.output
    args, env = captured_exec[0]
    flags = _flags(args)
    assert flags["--server.address"] == host and flags["--server.headless"] == "true"
    assert args[5] == str(APP)  # the app without sign-in
    assert "CAIRN_DASHBOARD_CALLBACK" not in env


def test_the_command_never_prompts_and_opens_a_browser_only_when_asked():
    flags = _flags(streamlit_command(host="127.0.0.1", port=8765))
    assert flags["--server.headless"] == "true"
    assert flags["--server.showEmailPrompt"] == "false"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert "--server.baseUrlPath" not in flags
    opened = _flags(streamlit_command(host="127.0.0.1", port=8765, headless=False,
                                      base_url_path="/team/cairn/"))
    assert opened["--server.headless"] == "false" and opened["--server.showEmailPrompt"] == "false"
    assert opened["--server.baseUrlPath"] == "team/cairn"
    assert streamlit_command(host="h", port=1, signed=True)[5] == str(SIGNED_APP)


@pytest.mark.parametrize(("given", "headless"), [([], "true"), (["--headless"], "true"),
                                                  (["--no-browser"], "true"),
                                                  (["--browser"], "false"), (["--open"], "false")])
def test_headless_is_the_default_and_the_old_flag_still_works(workspace, monkeypatch,
                                                              captured_exec, given, headless):
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(dashboard, given)
    assert isinstance(result.exception, Exec), result.output
    assert _flags(captured_exec[0][0])["--server.headless"] == headless


def _flags(args: list[str]) -> dict[str, str]:
    start = args.index("run") + 2
    return dict(zip(args[start::2], args[start + 1::2], strict=True))
