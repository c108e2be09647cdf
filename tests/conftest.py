"""Shared fixtures: a workspace in tmp_path on each store dialect; no connection beyond
127.0.0.1 from the test process.

Store tests run on SQLite and on PostgreSQL. PostgreSQL's URL comes from
``CAIRN_TEST_POSTGRES_URL`` (``make test`` sets it to the local server); each test gets a
schema of its own, dropped afterwards. Without the variable the PostgreSQL cases are skipped,
saying so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from registry.config import Workspace

PG_URL = os.environ.get("CAIRN_TEST_POSTGRES_URL")

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# System metrics off unless a test asks for them: they would add system/* metrics to every
# run whose metrics a test counts (tests/test_sampler.py and test_usage.py turn them on).
os.environ.setdefault("CAIRN_SYSTEM_INTERVAL", "0")
os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")


class NetworkLeak(AssertionError):
    """A test tried to connect beyond the loopback interface."""


def _loopback_only(connect):
    def guarded(sock: socket.socket, address, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise NetworkLeak(f"the suite stays on 127.0.0.1; a test connected to {address}")
        return connect(sock, address, *args)

    return guarded


@pytest.fixture(autouse=True, scope="session")
def no_network_beyond_loopback() -> Iterator[None]:
    """Every TCP connection from the test process goes to 127.0.0.1 or ::1 (a download that
    escaped its loopback server fails loudly instead of reaching the internet)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _loopback_only(socket.socket.connect))
    mp.setattr(socket.socket, "connect_ex", _loopback_only(socket.socket.connect_ex))
    yield
    mp.undo()


@pytest.fixture
def tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, made the working directory (dvclive's fixture)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def pg_schema(prefix: str = "t") -> Iterator[str]:
    """The URL of a PostgreSQL schema of its own, dropped (with its stores closed) on exit."""
    from sqlalchemy import create_engine, text

    from registry.store import _STORES
    from registry.store._engine import normalise_url

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(normalise_url(PG_URL), schema)
    finally:
        for key in [k for k in _STORES if schema in k[0]]:
            _STORES.pop(key).close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, empty store URL of each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'registry.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set CAIRN_TEST_POSTGRES_URL to test it")
    with pg_schema() as url:
        yield url


@pytest.fixture
def workspace(tmp_dir: Path, store_url: str) -> Workspace:
    """A workspace in the working directory on each dialect, flushing and beating fast."""
    return Workspace(
        root=tmp_dir, store_url=store_url, artifact_root=str(tmp_dir / "artifacts"),
        catalog_dir=tmp_dir / "catalog", owner="tester", heartbeat_interval=0.5,
        flush_interval=0.05, system_interval=0,
    )


@pytest.fixture
def slow_workspace(workspace: Workspace) -> Workspace:
    """The same workspace with production-like intervals."""
    return replace(workspace, heartbeat_interval=30.0, flush_interval=1.0)


@pytest.fixture
def repo(tmp_dir: Path) -> Path:
    """The working directory as a git repository with one commit (a run's code version)."""
    git(tmp_dir, "init", "-q", "-b", "main")
    (tmp_dir / "train.py").write_text("print(1)\n")
    git(tmp_dir, "add", "-A")
    git(tmp_dir, "commit", "-q", "-m", "c")
    return tmp_dir


def git(cwd: Path, *args: str) -> str:
    """Run git in a test repository with a fixed identity."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout
