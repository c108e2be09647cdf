"""The sign-in gate: the first thing every page runs (``streamlit_app.py``).

Without ``[dashboard.auth]`` in the workspace configuration it does nothing. With it, a
person who has not signed in sees only a sign-in button (Streamlit's own OpenID Connect
sign-in, ``st.login``); a signed-in person whose e-mail address is not allowed sees a refusal
and a sign-out button; an allowed person sees the pages, with their name and a sign-out
button in the sidebar.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from dashboard import data
from dashboard._service_auth import SignIn, sign_in
from registry.errors import CairnError

__all__ = ["require_sign_in"]


def require_sign_in() -> None:
    """Stop the script here unless sign-in is off or an allowed person is signed in."""
    settings = _settings()
    if settings is None:
        return
    if not _streamlit_has_auth():
        _stop_with("Sign-in is configured ([dashboard.auth]) but this server was not given "
                   "its settings: start it with `cairn dashboard`.")
    elif not st.user.is_logged_in:
        _sign_in_screen()
    elif not _allowed(settings):
        _refusal()
    else:
        _signed_in_sidebar()


def _settings() -> SignIn | None:
    try:
        return sign_in(data.workspace())
    except CairnError as exc:
        _stop_with(f"The dashboard cannot start: {exc}")


def _allowed(settings: SignIn) -> bool:
    return settings.allows(st.user.get("email"), st.user.get("email_verified"))


def _sign_in_screen() -> None:
    st.title("Cairn")
    st.write("Sign in to see the team's experiments.")
    st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)
    st.stop()


def _refusal() -> None:
    st.title("Cairn")
    st.error("This account is not allowed to see this dashboard. Ask the team that runs it "
             "to add your address, or sign out and sign in with another account.",
             icon=":material/block:")
    st.text(f"Signed in as {_who()}")  # text, never Markdown: the claims are the user's own
    st.button("Sign out", icon=":material/logout:", on_click=st.logout)
    st.stop()


def _signed_in_sidebar() -> None:
    with st.sidebar:
        st.text(f"Signed in as {_who()}")
        st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="cairn-sign-out")


def _who() -> str:
    name, email = st.user.get("name"), st.user.get("email")
    if name and email and name != email:
        return f"{name} <{email}>"
    return str(name or email or "an account without a name or e-mail address")


def _streamlit_has_auth() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # Streamlit's "no secrets found" error is one
        return False


def _stop_with(message: str) -> NoReturn:
    st.error(message)
    st.stop()

