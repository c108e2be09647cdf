"""Sign-in settings: the ``[dashboard.auth]`` table of the workspace configuration.

    [dashboard.auth]
    server_metadata_url = "https://login.example.com/.well-known/openid-configuration"
    client_id = "cairn-dashboard"
    client_secret_env = "CAIRN_OIDC_CLIENT_SECRET"   # the default: where the client secret is
    cookie_secret_env = "CAIRN_COOKIE_SECRET"        # the default: signs the sign-in cookie
    allowed_emails = ["ana@example.com"]
    allowed_domains = ["example.com"]                # and/or; at least one of the two
    redirect_uri = "https://cairn.example.com/oauth2callback"  # default: host, port, base path

The secrets stay in the environment: they are read when the server starts and handed to
Streamlit in memory (:func:`streamlit_secrets`), never written to a file, a URL or a log.
No Streamlit here: ``cairn dashboard`` checks these settings before it starts the server.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.config import Workspace
from registry.errors import ConfigError

__all__ = ["CLIENT_SECRET_ENV", "COOKIE_SECRET_ENV", "SignIn", "sign_in", "streamlit_secrets"]

CLIENT_SECRET_ENV = "CAIRN_OIDC_CLIENT_SECRET"
COOKIE_SECRET_ENV = "CAIRN_COOKIE_SECRET"
CALLBACK = "/oauth2callback"  # the path Streamlit serves the provider's answer on
_KEYS = {"server_metadata_url", "client_id", "client_secret_env", "cookie_secret_env",
         "allowed_emails", "allowed_domains", "redirect_uri"}
_DASHBOARD_KEYS = {"auth"}
_MIN_COOKIE_SECRET = 32  # characters: Streamlit signs cookies with it (HMAC-SHA256)


@dataclass(frozen=True)
class SignIn:
    """Who may sign in, and through which OpenID Connect provider."""

    server_metadata_url: str
    client_id: str
    allowed_emails: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    client_secret_env: str = CLIENT_SECRET_ENV
    cookie_secret_env: str = COOKIE_SECRET_ENV
    redirect_uri: str | None = None

    def allows(self, email: str | None, verified: object = None) -> bool:
        """True for an address on the list or in an allowed domain; an address the provider
        says it has not verified (``email_verified`` false) is never allowed."""
        if not email or verified is False or str(verified).lower() == "false":
            return False
        address = email.strip().lower()
        local, at, domain = address.rpartition("@")
        if not (local and at):
            return False
        return address in self.allowed_emails or domain in self.allowed_domains

    def callback_url(self, host: str, port: int, base_url_path: str = "") -> str:
        """``redirect_uri`` as configured, or this server's own ``/oauth2callback``."""
        if self.redirect_uri:
            return self.redirect_uri
        if _is_wildcard(host):
            raise ConfigError(f"dashboard.auth: set redirect_uri: the address browsers use to "
                              f"reach a server listening on {host} cannot be guessed")
        shown = f"[{host}]" if ":" in host else host
        base = "/" + base_url_path.strip("/") if base_url_path.strip("/") else ""
        return f"http://{shown}:{port}{base}{CALLBACK}"

    def secrets(self, env: Mapping[str, str]) -> tuple[str, str]:
        """The client secret and the cookie secret, read from the environment."""
        client = _secret(env, self.client_secret_env, "the OpenID Connect client secret")
        cookie = _secret(env, self.cookie_secret_env, "the secret that signs sign-in cookies")
        if len(cookie) < _MIN_COOKIE_SECRET:
            raise ConfigError(f"{self.cookie_secret_env} is shorter than {_MIN_COOKIE_SECRET} "
                              "characters: use a long random value (python -c 'import secrets; "
                              "print(secrets.token_urlsafe(32))')")
        return client, cookie


def sign_in(ws: Workspace) -> SignIn | None:
    """The workspace's sign-in settings; None when ``[dashboard.auth]`` is absent."""
    where = str(ws.config_file) if ws.config_file else None
    _check_keys(ws.dashboard, _DASHBOARD_KEYS, "dashboard", where)
    table = ws.dashboard.get("auth")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError("dashboard.auth must be a table", where)
    _check_keys(table, _KEYS, "dashboard.auth", where)
    settings = SignIn(
        server_metadata_url=_url(table, "server_metadata_url", where, required=True),
        client_id=_text(table, "client_id", where, required=True),
        allowed_emails=_lowered(table, "allowed_emails", where),
        allowed_domains=_lowered(table, "allowed_domains", where, strip="@"),
        client_secret_env=_text(table, "client_secret_env", where) or CLIENT_SECRET_ENV,
        cookie_secret_env=_text(table, "cookie_secret_env", where) or COOKIE_SECRET_ENV,
        redirect_uri=_url(table, "redirect_uri", where, ends=CALLBACK) or None,
    )
    if not settings.allowed_emails and not settings.allowed_domains:
        raise ConfigError("dashboard.auth: list who may sign in (allowed_emails and/or "
                          "allowed_domains); without them anyone the provider knows gets in",
                          where)
    return settings


def streamlit_secrets(settings: SignIn, *, callback_url: str,
                      env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Streamlit's ``[auth]`` secrets for ``st.login()`` (its default provider)."""
    client_secret, cookie_secret = settings.secrets(os.environ if env is None else env)
    return {"auth": {
        "redirect_uri": callback_url,
        "cookie_secret": cookie_secret,
        "client_id": settings.client_id,
        "client_secret": client_secret,
        "server_metadata_url": settings.server_metadata_url,
    }}


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _secret(env: Mapping[str, str], var: str, what: str) -> str:
    value = env.get(var, "")
    if not value.strip():
        raise ConfigError(f"sign-in is configured ([dashboard.auth]) but the environment "
                          f"variable {var} ({what}) is not set")
    return value


def _check_keys(table: Any, known: set[str], name: str, where: str | None) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{name} must be a table", where)
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown setting {name}.{unknown[0]!r}; known: "
                          f"{', '.join(sorted(known))}", where)


def _text(table: Mapping[str, Any], key: str, where: str | None, *,
          required: bool = False) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"dashboard.auth.{key} must be a string", where)
    if required and not value.strip():
        raise ConfigError(f"dashboard.auth.{key} is required", where)
    return value.strip()


def _url(table: Mapping[str, Any], key: str, where: str | None, *, required: bool = False,
         ends: str = "") -> str:
    value = _text(table, key, where, required=required)
    if value and not value.startswith(("https://", "http://")):
        raise ConfigError(f"dashboard.auth.{key} must be an http(s) URL", where)
    if value and not value.rstrip("/").endswith(ends):
        raise ConfigError(f"dashboard.auth.{key} must end with {ends} (Streamlit's callback)",
                          where)
    return value


def _lowered(table: Mapping[str, Any], key: str, where: str | None, *,
             strip: str = "") -> frozenset[str]:
    value: Iterable[Any] = table.get(key, [])
    if isinstance(value, str) or not isinstance(value, list) or not all(
            isinstance(v, str) and v.strip(strip + " ") for v in value):
        raise ConfigError(f"dashboard.auth.{key} must be a list of non-empty strings", where)
    return frozenset(v.strip().lstrip(strip).lower() for v in value)
