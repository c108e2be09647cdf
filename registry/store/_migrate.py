"""Bring a store's schema to this version of Cairn with Alembic, once, under a lock."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from registry.errors import SchemaOutdatedError, SchemaVersionError, StoreError
from registry.store._engine import read_options
from registry.store.schema import SCHEMA_REVISION

__all__ = ["check_schema", "current_revision", "ensure_schema", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same in every process that migrates.
_PG_LOCK_KEY = 0x6361_6972_6E


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision stamped in the store, or None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine, url: str) -> None:
    """Create or upgrade the schema if it is behind; refuse a schema from a newer Cairn."""
    with engine.connect().execution_options(**read_options()) as conn:
        found = current_revision(conn)
    if found == SCHEMA_REVISION:
        return
    if found is not None and found not in _known_revisions():
        raise SchemaVersionError(url, found, SCHEMA_REVISION)
    upgrade(engine)


def check_schema(engine: Engine, url: str) -> None:
    """For a reader, which never migrates: the store must be at this Cairn's revision."""
    with engine.connect().execution_options(**read_options()) as conn:
        found = current_revision(conn)
    if found == SCHEMA_REVISION:
        return
    if found is None:
        raise StoreError(f"registry store {url} holds no Cairn schema: create it with any "
                         "writable cairn command (cairn init) first")
    if found in _known_revisions():
        raise SchemaOutdatedError(url, found, SCHEMA_REVISION)
    raise SchemaVersionError(url, found, SCHEMA_REVISION)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic's upgrade inside one locked write transaction."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
