"""Engines and transactions: one place that knows SQLite's and PostgreSQL's quirks.

SQLite runs in WAL mode with a long busy timeout, foreign keys on, and every write
transaction started with ``BEGIN IMMEDIATE``: a deferred transaction that later upgrades to a
write lock fails at once with "database is locked" when another process wrote in between,
whatever the busy timeout, so many training processes writing one file need the immediate form.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from registry.errors import (
    StoreCorruptError,
    StoreError,
    StoreReadOnlyError,
    StoreUnavailableError,
)

__all__ = [
    "BUSY_TIMEOUT_S", "make_engine", "normalise_url", "read_options", "safe_url",
    "translate_errors",
]

BUSY_TIMEOUT_S = 120
WAL_SIZE_LIMIT = 64 * 2**20
_READ = "cairn_read"


def normalise_url(url: str) -> str:
    """Use psycopg (v3) for plain ``postgresql://`` URLs; leave others alone."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, busy timeout and foreign keys."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.database or ":memory:", readonly)
    # A training process keeps one connection (its writer thread and its own calls share it;
    # a call that overlaps a flush borrows one more for a moment), so a PostgreSQL server's
    # connections go about twice as far. Readers serve several sessions at once.
    engine = create_engine(url, pool_pre_ping=True, pool_size=2 if readonly else 1,
                           max_overflow=4)
    if readonly:
        event.listen(engine, "connect", _pg_readonly)
    return engine


def read_options() -> dict[str, bool]:
    """Execution options for a connection that only reads (SQLite: a deferred BEGIN)."""
    return {_READ: True}


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Map driver errors to the registry's own store errors."""
    try:
        yield
    except StoreError:
        raise
    except DBAPIError as exc:
        raise _translate(url, exc) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"registry store {url}: {exc}") from exc


# SQLSTATEs: read-only transaction, insufficient privilege; undefined table, undefined column.
_READ_ONLY_STATES = {"25006", "42501"}
_SCHEMA_STATES = {"42P01", "42703"}


def _translate(url: str, exc: DBAPIError) -> StoreError:
    message = str(exc.orig) if exc.orig is not None else str(exc)
    lowered = message.lower()
    state = getattr(exc.orig, "sqlstate", None)
    if "file is not a database" in lowered or "malformed" in lowered:
        return StoreCorruptError(safe_url(url), message)
    if state in _READ_ONLY_STATES or "readonly database" in lowered:
        return StoreReadOnlyError(safe_url(url), f"write ({message.strip()})")
    if state in _SCHEMA_STATES or "no such table" in lowered or "no such column" in lowered:
        return StoreError(f"registry store {safe_url(url)} does not have the tables this Cairn "
                          f"expects ({message.strip()}); open it with write access to upgrade it")
    if state and state[:2] in ("22", "54"):  # a value the store cannot hold, not an outage
        return StoreError(f"registry store {safe_url(url)} cannot hold a value: {message}")
    if isinstance(exc, OperationalError):
        return StoreUnavailableError(safe_url(url), message)
    return StoreError(f"registry store {safe_url(url)}: {message}")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


@functools.cache
def _check_fts5() -> None:
    """Full-text search needs FTS5. Python's SQLite has it, but a library that brings its own
    SQLite (TensorFlow does) and is imported before ``sqlite3`` replaces it process-wide."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"this process's SQLite {sqlite3.sqlite_version} has no FTS5 ({exc}); another "
            "library loaded its own SQLite first (TensorFlow does): import registry before "
            "tensorflow") from exc
    finally:
        probe.close()


def _sqlite_engine(database: str, readonly: bool) -> Engine:
    _check_fts5()
    if database != ":memory:":
        path = Path(database)
        if readonly:
            if not path.exists():
                raise StoreUnavailableError(database, "the file does not exist")
            target = f"sqlite:///file:{path}?mode=ro&uri=true"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = f"sqlite:///{path}"
    else:
        raise StoreError("an in-memory SQLite store cannot be shared by the run's writer "
                         "thread; use a file (sqlite:///path/registry.db)")
    engine = create_engine(
        target, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    )
    event.listen(engine, "connect", _sqlite_connect(readonly))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(readonly: bool):
    def on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not readonly:
                cursor.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable against process crashes in WAL mode (not power loss).
                cursor.execute("PRAGMA synchronous=NORMAL")
                # A WAL that readers kept from checkpointing (a dashboard, under load) shrinks
                # back to this size at the next checkpoint instead of keeping its peak.
                cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return on_connect


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_READ):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _pg_readonly(dbapi_connection, _record) -> None:
    # The session default covers every transaction, whoever begins it (autocommit included);
    # psycopg's flag makes its own BEGINs read-only as well.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION default_transaction_read_only = on")
    dbapi_connection.commit()
    dbapi_connection.read_only = True


def sqlite_path(url: str) -> str | None:
    """The file behind a SQLite URL, or None for other stores and in-memory databases."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)
