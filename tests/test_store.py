"""The store: migrations, schema, and what happens with a missing, corrupt or newer store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from registry.errors import SchemaVersionError, StoreCorruptError, StoreError
from registry.store import SqlStore
from registry.store._migrate import _config
from registry.store.schema import SCHEMA_REVISION, TEXT_INDEX_TABLES, metadata


def test_code_writes_the_migrations_head():
    heads = ScriptDirectory.from_config(_config()).get_heads()
    assert heads == [SCHEMA_REVISION]


def _not_text_index(name, type_, _parent) -> bool:
    # The free-text index is per-dialect DDL outside the metadata (FTS5 makes shadow tables).
    return not (type_ == "table" and name.startswith(TEXT_INDEX_TABLES))


def test_migrated_schema_matches_the_tables_in_code(store_url):
    store = SqlStore(store_url)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_text_index})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_every_foreign_key_is_indexed(store_url):
    store = SqlStore(store_url)
    insp = inspect(store.engine)
    for table in metadata.sorted_tables:
        indexed = [tuple(ix["column_names"]) for ix in insp.get_indexes(table.name)]
        indexed.append(tuple(insp.get_pk_constraint(table.name)["constrained_columns"]))
        # Unique constraints are backed by an index on both dialects.
        indexed += [tuple(uq["column_names"]) for uq in insp.get_unique_constraints(table.name)]
        for fk in insp.get_foreign_keys(table.name):
            cols = tuple(fk["constrained_columns"])
            assert any(ix[: len(cols)] == cols for ix in indexed), (table.name, cols)


def test_opening_twice_migrates_once(store_url):
    SqlStore(store_url)
    store = SqlStore(store_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_sqlite_store_uses_wal_and_foreign_keys(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == 64 * 2**20


def test_a_missing_sqlite_store_is_created(tmp_path):
    path = tmp_path / "deep" / "folder" / "registry.db"
    SqlStore(f"sqlite:///{path}")
    assert path.exists()


def test_a_corrupt_store_is_a_typed_error_and_left_alone(tmp_path):
    path = tmp_path / "registry.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreCorruptError, match="not a readable Cairn database"):
        SqlStore(f"sqlite:///{path}")
    assert path.read_bytes() == garbage


def test_a_store_from_a_newer_cairn_is_refused(tmp_path):
    path = tmp_path / "registry.db"
    SqlStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaVersionError) as info:
        SqlStore(f"sqlite:///{path}")
    assert info.value.found == "9999"


def test_in_memory_sqlite_is_refused_with_advice():
    with pytest.raises(StoreError, match="use a file"):
        SqlStore("sqlite:///:memory:")


def test_unreachable_postgres_is_a_typed_error():
    from registry.errors import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="unavailable"):
        SqlStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_check_constraints_carry_the_names_in_code(store_url):
    from sqlalchemy import CheckConstraint

    store = SqlStore(store_url)
    insp = inspect(store.engine)
    for table in metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        found = {c["name"] for c in insp.get_check_constraints(table.name)}
        assert found == expected, table.name


def test_sqlite_without_fts5_is_a_clear_error(tmp_path):
    """TensorFlow imported before sqlite3 brings an SQLite without FTS5 into the process."""
    pytest.importorskip("tensorflow")
    script = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
              "import tensorflow\n"
              "from registry.store import open_store\n"
              "from registry.errors import StoreError\n"
              "try:\n"
              f"    open_store('sqlite:///{tmp_path / 'r.db'}')\n"
              "except StoreError as exc:\n"
              "    print('StoreError:', exc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120).stdout
    assert "StoreError:" in out and "import registry before tensorflow" in out


def test_a_writable_postgres_store_keeps_one_connection():
    from tests.conftest import PG_URL, pg_schema

    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set CAIRN_TEST_POSTGRES_URL to test it")
    with pg_schema() as url:
        writable, reader = SqlStore(url), SqlStore(url, readonly=True)
        try:
            assert (writable.engine.pool.size(), reader.engine.pool.size()) == (1, 2)
        finally:
            writable.close()
            reader.close()


def _runs(store: SqlStore) -> int:
    with store.reading() as conn:
        return conn.execute(text("SELECT count(*) FROM run")).scalar_one()


def test_reads_in_a_snapshot_share_one_transaction(store_url):
    store, other = SqlStore(store_url), SqlStore(store_url)
    try:
        with store.snapshot():
            with store.reading() as first, store.reading() as second:
                assert first is second
            before = _runs(store)
            other.create_run("p", {"id": "a" * 32, "owner": "o", "status": "RUNNING",
                                   "start_time": 1.0}, {}, {})
            assert _runs(store) == before  # the snapshot's view does not move
            with store.snapshot():  # nested: the same snapshot
                assert _runs(store) == before
        assert _runs(store) == before + 1
    finally:
        store.close()
        other.close()


def test_writing_inside_a_snapshot_is_refused(store_url):
    store = SqlStore(store_url)
    try:
        with store.snapshot(), pytest.raises(RuntimeError, match="after the snapshot"):
            store.set_tags(1, {"k": "v"})
        with store.snapshot():
            pass
        assert store.list_runs() == []
    finally:
        store.close()


def test_a_snapshot_is_its_own_threads(store_url):
    import threading

    store = SqlStore(store_url)
    seen = []
    try:
        with store.snapshot(), store.reading() as mine:
            worker = threading.Thread(target=lambda: seen.append(_other_conn(store, mine)))
            worker.start()
            worker.join()
        assert seen == [True]
    finally:
        store.close()


def _other_conn(store: SqlStore, mine) -> bool:
    with store.reading() as conn:
        return conn is not mine
