"""Sign-in: ``[dashboard.auth]`` parsed and checked, then the whole OpenID Connect flow in
chromium against a real provider on 127.0.0.1 (``oidc-provider-mock``, one subprocess for the
module), with one ``cairn dashboard`` behind a base path, as behind a reverse proxy."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard._service import SIGNED_APP
from dashboard._service_auth import SignIn, sign_in, streamlit_secrets
from dashboard.cli import dashboard
from dashboard.errors import DashboardError
from registry.config import load_workspace
from registry.errors import ConfigError
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, free_port, stop, wait_healthy

CLIENT_SECRET = "client-" + secrets.token_urlsafe(24)
COOKIE_SECRET = "cookie-" + secrets.token_urlsafe(32)
SECRETS = {"CAIRN_OIDC_CLIENT_SECRET": CLIENT_SECRET, "CAIRN_COOKIE_SECRET": COOKIE_SECRET}
USERS = [  # subject -> claims the provider returns
    {"sub": "ana", "email": "Ana@Example.com", "name": "Ana Lopez"},  # on the list
    {"sub": "bo", "email": "bo@team.example", "name": "Bo Chen"},  # allowed domain
    {"sub": "mallory", "email": "mallory@elsewhere.example", "name": "Mallory"},
    {"sub": "eve", "email": "eve@team.example", "email_verified": False, "name": "Eve"},
]
AUTH = """\
[dashboard.auth]
server_metadata_url = "{url}/.well-known/openid-configuration"
client_id = "cairn-dashboard"
allowed_emails = ["ana@example.com"]
allowed_domains = ["team.example"]
"""


# -- the settings ------------------------------------------------------------------------------


def _workspace(root: Path, auth: str, *, pyproject: bool = False):
    if pyproject:
        text = auth.replace("[dashboard", "[tool.cairn.dashboard")
        (root / "pyproject.toml").write_text("[tool.cairn]\n" + text)
    else:
        (root / "cairn.toml").write_text(auth)
    return load_workspace(root, env={})


FULL = """\
[dashboard.auth]
server_metadata_url = "https://login.example.com/.well-known/openid-configuration"
client_id = "cairn-dashboard"
allowed_emails = ["Ana@Example.com"]
allowed_domains = ["@Team.Example"]
client_secret_env = "TEAM_OIDC_SECRET"
redirect_uri = "https://cairn.example.com/oauth2callback"
"""


@pytest.mark.parametrize("pyproject", [False, True])
def test_the_auth_table_is_read_from_either_configuration_file(tmp_path, pyproject):
    settings = sign_in(_workspace(tmp_path, FULL, pyproject=pyproject))
    assert settings == SignIn(
        server_metadata_url="https://login.example.com/.well-known/openid-configuration",
        client_id="cairn-dashboard", allowed_emails=frozenset({"ana@example.com"}),
        allowed_domains=frozenset({"team.example"}), client_secret_env="TEAM_OIDC_SECRET",
        redirect_uri="https://cairn.example.com/oauth2callback")
    assert settings.cookie_secret_env == "CAIRN_COOKIE_SECRET"


def test_no_auth_table_means_no_sign_in(tmp_path):
    assert sign_in(_workspace(tmp_path, 'store = "sqlite:///x.db"\n')) is None


@pytest.mark.parametrize(("text", "message"), [
    ("[dashboard]\nport = 1\n", "unknown setting dashboard.'port'"),
    ('dashboard = "on"\n', "dashboard must be a table"),
    ('[dashboard]\nauth = "oidc"\n', "dashboard.auth must be a table"),
    (AUTH + 'allowed_users = ["x"]\n', "unknown setting dashboard.auth.'allowed_users'"),
    (AUTH.replace('client_id = "cairn-dashboard"\n', ""), "dashboard.auth.client_id is required"),
    (AUTH.replace('server_metadata_url = "{url}/.well-known/openid-configuration"\n', ""),
     "dashboard.auth.server_metadata_url is required"),
    (AUTH.replace('server_metadata_url = "{url}', 'server_metadata_url = "login.example.com'),
     "dashboard.auth.server_metadata_url must be an http(s) URL"),
    (AUTH + 'redirect_uri = "https://cairn.example.com/callback"\n',
     "dashboard.auth.redirect_uri must end with /oauth2callback"),
    (AUTH.replace('client_id = "cairn-dashboard"', "client_id = 7"),
     "dashboard.auth.client_id must be a string"),
    (AUTH.replace('["ana@example.com"]', '"ana@example.com"'),
     "dashboard.auth.allowed_emails must be a list of non-empty strings"),
    (AUTH.replace('["team.example"]', '["@"]'),
     "dashboard.auth.allowed_domains must be a list of non-empty strings"),
    (AUTH.replace('allowed_emails = ["ana@example.com"]\nallowed_domains = ["team.example"]\n', ""),
     "list who may sign in"),
])
def test_bad_auth_settings_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        sign_in(_workspace(tmp_path, text.replace("{url}", "https://login.example.com")))
    assert caught.value.path == str(tmp_path / "cairn.toml")


def _settings(**changes) -> SignIn:
    fields = {"server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
              "client_id": "cairn", "allowed_emails": frozenset({"ana@example.com"}),
              "allowed_domains": frozenset({"team.example"}), **changes}
    return SignIn(**fields)


@pytest.mark.parametrize(("email", "verified", "allowed"), [
    ("ana@example.com", None, True), ("ANA@example.com ", True, True),
    ("ben@example.com", None, False), ("bo@team.example", None, True),
    ("bo@sub.team.example", None, False), ("bo@team.example.evil", None, False),
    ("bo@team.example", False, False), ("bo@team.example", "false", False),
    (None, None, False), ("", None, False), ("team.example", None, False),
])
def test_who_is_allowed(email, verified, allowed):
    assert _settings().allows(email, verified) is allowed


@pytest.mark.parametrize("missing", ["CAIRN_OIDC_CLIENT_SECRET", "CAIRN_COOKIE_SECRET"])
def test_a_missing_secret_names_its_variable(missing):
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(ConfigError, match=f"environment variable {missing} "):
        _settings().secrets(env)
    with pytest.raises(ConfigError, match="TEAM_SECRET"):
        _settings(client_secret_env="TEAM_SECRET").secrets(SECRETS)


def test_a_short_cookie_secret_is_refused():
    with pytest.raises(ConfigError, match="CAIRN_COOKIE_SECRET is shorter than 32"):
        _settings().secrets({**SECRETS, "CAIRN_COOKIE_SECRET": "password"})


def test_streamlit_gets_its_auth_section():
    got = streamlit_secrets(_settings(), callback_url="http://127.0.0.1:1/oauth2callback",
                            env=SECRETS)
    assert got == {"auth": {"redirect_uri": "http://127.0.0.1:1/oauth2callback",
                            "cookie_secret": COOKIE_SECRET, "client_id": "cairn",
                            "client_secret": CLIENT_SECRET,
                            "server_metadata_url": _settings().server_metadata_url}}


@pytest.mark.parametrize(("host", "base", "url"), [
    ("127.0.0.1", "", "http://127.0.0.1:8501/oauth2callback"),
    ("localhost", "/team/cairn/", "http://localhost:8501/team/cairn/oauth2callback"),
    ("::1", "cairn", "http://[::1]:8501/cairn/oauth2callback"),
    ("10.0.0.5", "", "http://10.0.0.5:8501/oauth2callback"),
])
def test_the_callback_defaults_to_this_server(host, base, url):
    assert _settings().callback_url(host, 8501, base) == url


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_every_interface_needs_an_explicit_redirect_uri(host):
    with pytest.raises(ConfigError, match="set redirect_uri"):
        _settings().callback_url(host, 8501)
    given = "https://cairn.example.com/oauth2callback"
    assert _settings(redirect_uri=given).callback_url(host, 8501) == given


# -- the command -------------------------------------------------------------------------------


class Exec(Exception):
    """Raised in place of ``os.execve``: the command the CLI would become."""


@pytest.fixture
def signed_workspace(tmp_dir, monkeypatch) -> Path:
    (tmp_dir / "cairn.toml").write_text(AUTH.format(url="http://127.0.0.1:9"))
    load_workspace(tmp_dir).open_store()  # creates the SQLite file
    for var in SECRETS:
        monkeypatch.delenv(var, raising=False)
    return tmp_dir


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_cairn_dashboard_names_a_missing_secret(signed_workspace, monkeypatch, missing):
    for var, value in SECRETS.items():
        if var != missing:
            monkeypatch.setenv(var, value)
    result = CliRunner().invoke(dashboard, [])
    assert result.exit_code == 1 and f"environment variable {missing} " in result.output


def test_secrets_stay_off_the_command_line(signed_workspace, monkeypatch):
    calls = []

    def execve(path, args, env):
        calls.append((list(args), dict(env)))
        raise Exec

    monkeypatch.setattr(os, "execve", execve)
    for var, value in SECRETS.items():
        monkeypatch.setenv(var, value)
    result = CliRunner().invoke(dashboard, ["--host", "0.0.0.0"])
    assert "set redirect_uri" in result.output  # every interface: the callback is not guessed
    result = CliRunner().invoke(dashboard, ["--host", "::1", "--base-url-path", "cairn"])
    assert isinstance(result.exception, Exec), result.output
    args, env = calls[0]
    assert args[5] == str(SIGNED_APP)
    assert env["CAIRN_DASHBOARD_CALLBACK"] == "http://[::1]:8501/cairn/oauth2callback"
    for secret in (CLIENT_SECRET, COOKIE_SECRET):
        assert secret not in " ".join(args) and secret not in result.output


def test_the_server_reads_its_secrets_from_the_environment_it_was_given(signed_workspace):
    from dashboard._service import server_secrets

    env = {"CAIRN_CONFIG": str(signed_workspace / "cairn.toml"), **SECRETS}
    with pytest.raises(DashboardError, match="start it with `cairn dashboard`"):
        server_secrets(env)  # no callback: not started by cairn dashboard
    callback = "http://127.0.0.1:8501/oauth2callback"
    auth = server_secrets({**env, "CAIRN_DASHBOARD_CALLBACK": callback})["auth"]
    assert auth["client_secret"] == CLIENT_SECRET and auth["cookie_secret"] == COOKIE_SECRET
    assert auth["redirect_uri"] == callback and auth["client_id"] == "cairn-dashboard"


@pytest.fixture
def gate(signed_workspace, monkeypatch):
    """The router in AppTest, on a workspace with sign-in and Streamlit's caches emptied."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard._service import APP

    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    monkeypatch.delenv("CAIRN_STORE", raising=False)
    st.cache_resource.clear()
    yield AppTest.from_file(str(APP), default_timeout=60)
    st.cache_resource.clear()


def test_a_server_started_without_its_sign_in_settings_shows_nothing(gate):
    gate.run()
    assert [e.value for e in gate.error] == [
        "Sign-in is configured ([dashboard.auth]) but this server was not given its settings: "
        "start it with `cairn dashboard`."]
    assert not gate.subheader and not gate.button


@pytest.mark.parametrize(("user", "shown"), [
    ({"is_logged_in": False}, "sign-in"),
    ({"is_logged_in": True, "email": "mallory@elsewhere.example", "name": "M"}, "refusal"),
    ({"is_logged_in": True, "email": "ana@example.com", "name": "Ana"}, "pages"),
])
def test_the_gate_in_each_state(gate, user, shown):
    gate.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:1/oauth2callback"}
    gate.user = user
    gate.run()
    assert not gate.exception
    buttons = [b.label for b in gate.button]
    headers = [h.value for h in gate.subheader]
    if shown == "sign-in":
        assert buttons == ["Sign in"] and not headers and not gate.error
    elif shown == "refusal":
        assert buttons == ["Sign out"] and not headers
        assert "not allowed" in gate.error[0].value
        assert [t.value for t in gate.text] == ["Signed in as M <mallory@elsewhere.example>"]
    else:
        assert "Measured organisational value" in headers
        assert [t.value for t in gate.sidebar.text] == ["Signed in as Ana <ana@example.com>"]
        assert buttons[-1] == "Sign out"


# -- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory) -> Iterator[str]:
    """An OpenID Connect provider on 127.0.0.1 whose login form offers the USERS."""
    port, log = free_port(), tmp_path_factory.mktemp("provider") / "provider.log"
    users = [arg for user in USERS for arg in ("--user-claims", json.dumps(user))]
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host",
                                   "127.0.0.1", "--port", str(port), *users],
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/.well-known/openid-configuration", server)
        yield url
    finally:
        stop(server)


def _wait_for(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the provider exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no answer from {url}")


@pytest.fixture(scope="module")
def signed_dashboard(provider, tmp_path_factory) -> Iterator[tuple[str, Path, int]]:
    """``cairn dashboard --base-url-path cairn`` on a filled workspace with sign-in, its
    secrets in the environment only, Streamlit logging at debug level; (url, log, pid)."""
    pytest.importorskip("authlib")
    from tests.test_dashboard_pages import fill_workspace

    root = tmp_path_factory.mktemp("signed")
    store_url = f"sqlite:///{root / 'store' / 'registry.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CAIRN_STORE", store_url)
        mp.delenv("CAIRN_CONFIG", raising=False)
        fill_workspace(root, store_url)
    with (root / "cairn.toml").open("a") as config:
        config.write("\n" + AUTH.format(url=provider))
    port, log = free_port(), root / "dashboard.log"
    env = {**os.environ, **SECRETS, "CAIRN_STORE": store_url, "STREAMLIT_LOGGER_LEVEL": "debug"}
    env.pop("CAIRN_CONFIG", None)
    with log.open("wb") as out:
        server = subprocess.Popen([str(Path(sys.executable).with_name("cairn")), "dashboard",
                                   "--port", str(port), "--base-url-path", "cairn"], cwd=root,
                                  env=env, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/cairn"
    try:
        wait_healthy(base, server)
        yield base, log, server.pid
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, signed_dashboard):
    """A new browser context (no cookies) that records every URL it requests."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.urls = []
    tab.on("request", lambda request: tab.urls.append(request.url))
    try:
        yield tab
    finally:
        _assert_no_secret(" ".join(tab.urls), "a requested URL")
        context.close()


def _assert_no_secret(text: str, where: str) -> None:
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} appeared in {where}"


def _signed_out_screen(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    expect(page.get_by_text("Measured organisational value")).to_have_count(0)


def _sign_in_as(page, base: str, subject: str) -> None:
    page.goto(base + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize?**")
    page.get_by_role("button", name=subject, exact=True).click()
    page.wait_for_url(base + "/**")


@pytest.mark.slow
def test_signed_out_sees_only_the_sign_in(page, signed_dashboard):
    base, _, _ = signed_dashboard
    for path in ("/", "/runs", "/catalog"):
        page.goto(base + path)
        _signed_out_screen(page)
        html = page.content()
        assert "r18-baseline" not in html and "scratch-detector" not in html
        _assert_no_secret(html, f"the page {path}")
    with urllib.request.urlopen(base + "/", timeout=10) as answer:
        _assert_no_secret(answer.read().decode(), "the served HTML")


@pytest.mark.slow
def test_an_allowed_address_gets_in_sees_its_name_and_signs_out(page, signed_dashboard):
    from playwright.sync_api import expect

    base, _, _ = signed_dashboard
    _sign_in_as(page, base, "ana")
    expect(page.get_by_text("Signed in as Ana Lopez <Ana@Example.com>")).to_be_visible()
    expect(page.get_by_text("Measured organisational value")).to_be_visible()
    page.get_by_test_id("stSidebarNav").get_by_text("Catalog").click()
    expect(page.get_by_text("scratch-detector").first).to_be_visible()
    _assert_no_secret(page.content(), "a signed-in page")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/oauth2/end_session?**")  # the provider ends its session too
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(base + "/**")
    _signed_out_screen(page)
    page.goto(base + "/catalog")  # the cookie is gone: nothing without signing in again
    _signed_out_screen(page)


@pytest.mark.slow
def test_an_allowed_domain_gets_in(page, signed_dashboard):
    from playwright.sync_api import expect

    base, _, _ = signed_dashboard
    _sign_in_as(page, base, "bo")
    expect(page.get_by_text("Signed in as Bo Chen <bo@team.example>")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()


@pytest.mark.slow
@pytest.mark.parametrize(("subject", "email"), [("mallory", "mallory@elsewhere.example"),
                                                ("eve", "eve@team.example")])  # not verified
def test_an_address_outside_the_list_is_refused(page, signed_dashboard, subject, email):
    from playwright.sync_api import expect

    base, _, _ = signed_dashboard
    _sign_in_as(page, base, subject)
    expect(page.get_by_text("This account is not allowed to see this dashboard")).to_be_visible()
    expect(page.get_by_text(f"<{email}>")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    page.goto(base + "/catalog")
    expect(page.get_by_text("This account is not allowed")).to_be_visible()
    assert "scratch-detector" not in page.content()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.mark.slow
def test_secrets_stay_out_of_the_log_and_the_process_arguments(signed_dashboard):
    _, log, pid = signed_dashboard
    text = log.read_text()
    assert "Running script" in text  # Streamlit logged at debug level, its most verbose
    _assert_no_secret(text, "the server's log")
    _assert_no_secret(Path(f"/proc/{pid}/cmdline").read_bytes().decode(), "the command line")
