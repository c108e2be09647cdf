"""A PostgreSQL role made by ``cairn reader-role`` reads everything and writes nothing.

Each test makes a role of its own on a store in a schema of its own (the PostgreSQL case of
``store_url``) and drops it afterwards. Writes are tried with the session's read-only default
left on and turned off, so the privileges themselves are shown to refuse them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import streamlit as st
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, event, text
from streamlit.testing.v1 import AppTest

import registry
from registry.cli.workspace import reader_role
from registry.config import Workspace, load_workspace
from registry.errors import StoreError, StoreReadOnlyError
from registry.store import SqlStore
from registry.store._engine import normalise_url
from registry.store._migrate import upgrade
from registry.store.roles import ReaderRoleError, drop_reader, grant_reader, reader_url
from registry.store.schema import SCHEMA_REVISION
from tests.test_dashboard_pages import APP, fill_workspace

# The PostgreSQL case of the ``store_url`` fixture only.
pg = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

# Every kind of write, each in a transaction of its own. "{seq}" is a sequence of the store.
WRITES = {
    "insert run": "INSERT INTO run (id, project_id, owner, status, start_time) "
                  "SELECT 'f00d', id, 'x', 'FINISHED', 0 FROM project LIMIT 1",
    "insert project": "INSERT INTO project (name, created_time) VALUES ('sneaky', 0)",
    "insert metric chunk": "INSERT INTO metric_chunk SELECT run_pk, 'x', 99, count, min_step, "
                           "max_step, steps, \"values\", times FROM metric_chunk LIMIT 1",
    "update run": "UPDATE run SET notes = 'changed'",
    "update metric summary": "UPDATE metric_summary SET last = 0",
    "delete run": "DELETE FROM run",
    "delete metric chunks": "DELETE FROM metric_chunk",
    "truncate": "TRUNCATE metric_summary",
    "select for update": "SELECT * FROM run FOR UPDATE",
    "nextval": "SELECT nextval('{seq}')",
    "create table": "CREATE TABLE sneaky (x int)",
    "create index": "CREATE INDEX sneaky_ix ON run (notes)",
    "alter table": "ALTER TABLE run ADD COLUMN sneaky int",
    "drop table": "DROP TABLE metric_chunk",
    "alembic stamp": "UPDATE alembic_version SET version_num = '9999'",
}


def _admin(url: str) -> Engine:
    return create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")


@pytest.fixture
def role(store_url: str) -> Iterator[str]:
    """A role name of this test's own; the role and whatever it was granted are dropped."""
    name = f"cairn_reader_{uuid.uuid4().hex[:10]}"
    yield name
    _drop(store_url, name)


def _drop(url: str, name: str) -> None:
    from registry.store import _STORES

    for key in [k for k in _STORES if f"//{name}" in k[0] or f"{name}@" in k[0]]:
        _STORES.pop(key).close()
    admin = _admin(url)
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first():
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(text(f"DROP OWNED BY {quoted}"))
            conn.execute(text(f"DROP ROLE {quoted}"))
    admin.dispose()


def _workspace(tmp_path, url: str) -> Workspace:
    return Workspace(root=tmp_path, store_url=url, artifact_root=str(tmp_path / "artifacts"),
                     catalog_dir=tmp_path / "catalog", owner="ana", flush_interval=0.05,
                     heartbeat_interval=0.5, system_interval=0)


@pytest.fixture
def filled(store_url: str, tmp_path) -> Workspace:
    """Two runs with params, tags, notes and metric histories, written by the owner."""
    ws = _workspace(tmp_path, store_url)
    for lr in (0.1, 0.01):
        with registry.start_run(project="défauts", name=f"lr-{lr}", params={"lr": lr},
                                tags={"team": "vision"}, notes="Kratzer ✓", workspace=ws) as r:
            for step in range(30):
                r.log_metric("loss", lr / (step + 1), step=step)
    return ws


@pg
def test_a_reader_reads_runs_search_history_and_comparisons(filled, role, tmp_path):
    grant = grant_reader(filled.store_url, role)
    assert grant.new and grant.role == role
    url = reader_url(filled.store_url, role)
    store = SqlStore(url, readonly=True, migrate=False)
    record = store.get_run("lr-0.01")
    assert (record.params, record.tags, record.notes) == ({"lr": 0.01}, {"team": "vision"},
                                                          "Kratzer ✓")
    assert len(store.metric_history("lr-0.1")["loss"]) == 30
    reader = _workspace(tmp_path, url).read_only()
    assert {r.name for r in registry.search("Kratzer and loss.last < 0.005",
                                            workspace=reader).runs} == {"lr-0.1", "lr-0.01"}
    assert registry.compare(["lr-0.1", "lr-0.01"], workspace=reader).param_differences == ["lr"]
    with store.reading() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == role
    store.close()


@pg
def test_every_kind_of_write_is_refused_read_only_default_or_not(filled, role):
    grant_reader(filled.store_url, role)
    engine = create_engine(reader_url(filled.store_url, role))
    admin = _admin(filled.store_url)
    seq = _admin_scalar(admin, "SELECT sequence_name FROM information_schema.sequences "
                               "WHERE sequence_schema = current_schema() LIMIT 1")
    before = _admin_scalar(admin, "SELECT (SELECT count(*) FROM run) + (SELECT count(*) FROM "
                                  "metric_chunk) + (SELECT count(*) FROM metric_summary)")
    refused = {}
    with engine.connect() as conn:
        for read_only in ("on", "off"):
            conn.execute(text(f"SET SESSION default_transaction_read_only = {read_only}"))
            conn.commit()
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == read_only
            conn.rollback()
            for what, sql in WRITES.items():
                with pytest.raises(Exception) as caught:
                    conn.exec_driver_sql(sql.format(seq=seq))
                conn.rollback()
                refused[what, read_only] = type(caught.value.orig).__name__
        # Granting itself more is no error in PostgreSQL (a warning: nothing granted).
        conn.execute(text("GRANT INSERT ON run TO CURRENT_USER"))
        assert not conn.execute(text("SELECT has_table_privilege('run', 'INSERT')")).scalar()
        conn.rollback()
    engine.dispose()
    assert len(refused) == 2 * len(WRITES)
    # Read-only sessions refuse first; without them, the privileges do.
    assert {e for (_, ro), e in refused.items() if ro == "off"} == {"InsufficientPrivilege"}
    assert _admin_scalar(admin, "SELECT (SELECT count(*) FROM run) + (SELECT count(*) FROM "
                                "metric_chunk) + (SELECT count(*) FROM metric_summary)") == before
    assert _admin_scalar(admin, "SELECT version_num FROM alembic_version") == SCHEMA_REVISION
    admin.dispose()


def _admin_scalar(admin: Engine, sql: str):
    with admin.connect() as conn:
        return conn.execute(text(sql)).scalar()


@pg
def test_the_registry_write_paths_fail_with_store_errors(filled, role, tmp_path):
    grant_reader(filled.store_url, role)
    url = reader_url(filled.store_url, role)
    store = SqlStore(url)  # writable as far as Cairn knows: the database refuses
    pk = store.resolve("lr-0.1")
    attempts = {
        "create_run": lambda: store.create_run("p", {"id": uuid.uuid4().hex, "owner": "x",
                                                     "status": "RUNNING", "start_time": 0.0},
                                               {}, {}),
        "update_run": lambda: store.update_run(pk, notes="changed"),
        "append_notes": lambda: store.append_notes(pk, "more"),
        "set_tags": lambda: store.set_tags(pk, {"team": "other"}),
        "delete_run": lambda: store.delete_run(pk),
        "start_run": lambda: registry.start_run(project="p", workspace=_workspace(tmp_path, url)),
        "define_mov": lambda: registry.define_mov("p", "m", unit="x", direction="higher",
                                                  baseline=0, target=1,
                                                  workspace=_workspace(tmp_path, url)),
    }
    for attempt in attempts.values():
        with pytest.raises(StoreError, match=r"permission denied|read-only transaction"):
            attempt()
    with pytest.raises(StoreReadOnlyError):  # opened read-only: refused before the database
        SqlStore(url, readonly=True, migrate=False).set_tags(pk, {"team": "other"})
    assert store.get_run(pk).tags == {"team": "vision"}
    store.close()


@pg
def test_tables_of_later_migrations_are_readable(store_url, role):
    """A store at 0002 gets its reader; the owner's upgrade to 0003 adds tables the reader
    can read at once (default privileges), and cannot write either."""
    engine = create_engine(normalise_url(store_url))
    upgrade(engine, "0002")
    engine.dispose()
    grant_reader(store_url, role, migrate=False)
    SqlStore(store_url).close()  # the owner upgrades
    reader = create_engine(reader_url(store_url, role))
    with reader.connect() as conn:
        for table in ("model_card", "mlflow_link", "card_text"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
        conn.execute(text("SET SESSION default_transaction_read_only = off"))
        conn.commit()
        with pytest.raises(Exception, match="permission denied"):
            conn.execute(text("INSERT INTO mlflow_link (run_pk, tracking_uri, mlflow_run_id, "
                              "experiment_id, direction, synced_time) "
                              "VALUES (1, 'u', 'r', 'e', 'export', 0)"))
    reader.dispose()


@pg
def test_granting_again_updates_and_takes_back_write_privileges(filled, role):
    first = grant_reader(filled.store_url, role)
    admin = _admin(filled.store_url)
    with admin.connect() as conn:
        conn.execute(text(f'GRANT INSERT, UPDATE ON run TO "{role}"'))
    second = grant_reader(filled.store_url, role)
    assert first.new and not second.new
    with admin.connect() as conn:
        granted = set(conn.execute(text(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = :r AND table_schema = current_schema()"), {"r": role}).scalars())
        readable = conn.execute(text(
            "SELECT count(*) FROM information_schema.table_privileges WHERE grantee = :r "
            "AND privilege_type = 'SELECT' AND table_schema = current_schema()"),
            {"r": role}).scalar()
        tables = conn.execute(text("SELECT count(*) FROM information_schema.tables "
                                   "WHERE table_schema = current_schema()")).scalar()
        settings = conn.execute(text(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r "
            "ON r.oid = s.setrole WHERE r.rolname = :r"), {"r": role}).scalars().all()
    admin.dispose()
    assert granted == {"SELECT"} and readable == tables >= 16  # text indexes included
    assert settings == ["default_transaction_read_only=on"]


@pg
def test_roles_that_could_still_write_are_refused(filled, role):
    admin = _admin(filled.store_url)
    writers, boss = f"{role}_writers", f"{role}_boss"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{writers}"'))
        conn.execute(text(f'GRANT INSERT ON run TO "{writers}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN IN ROLE "{writers}"'))
        conn.execute(text(f'CREATE ROLE "{boss}" LOGIN SUPERUSER'))
    try:
        with pytest.raises(ReaderRoleError, match="can still write run"):
            grant_reader(filled.store_url, role)
        with admin.connect() as conn:  # rolled back: no read-only default was left behind
            assert conn.execute(text("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r "
                                     "ON r.oid = s.setrole WHERE r.rolname = :r"),
                                {"r": role}).scalar() == 0
        for name, reason in (("postgres", "running this command"), (boss, "superuser")):
            with pytest.raises(ReaderRoleError, match=reason):
                grant_reader(filled.store_url, name)
            with pytest.raises(ReaderRoleError, match=reason):  # DROP OWNED would drop the store
                drop_reader(filled.store_url, name)
        assert registry.get_run("lr-0.1", workspace=filled).params == {"lr": 0.1}
    finally:
        for name in (writers, boss):
            _drop(filled.store_url, name)
        admin.dispose()


@pg
@pytest.mark.parametrize("suffix", [' "quoted" 100% ✓', "; DROP TABLE run; --"])
def test_odd_role_names_are_quoted_not_run(filled, role, suffix):
    name = role + suffix
    try:
        grant_reader(filled.store_url, name)
        store = SqlStore(reader_url(filled.store_url, name), readonly=True, migrate=False)
        assert {r.name for r in store.list_runs()} == {"lr-0.1", "lr-0.01"}
        store.close()
    finally:
        _drop(filled.store_url, name)


@pg
def test_the_password_reaches_the_server_only_hashed(filled, role):
    sent: list[str] = []

    def record(conn, cursor, statement, *args):
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        grant_reader(filled.store_url, role, "s3cret 'pa%ss' ✓")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert sent and not any("s3cret" in s for s in sent)
    assert any("SCRAM-SHA-256$" in s for s in sent)
    admin = _admin(filled.store_url)
    stored = _admin_scalar(admin, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
    admin.dispose()
    assert stored.startswith("SCRAM-SHA-256$")


@pg
def test_the_dashboard_shows_runs_to_the_reader(store_url, role, tmp_dir, monkeypatch):
    monkeypatch.setenv("CAIRN_STORE", store_url)
    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    fill_workspace(tmp_dir, store_url)
    grant_reader(store_url, role)
    monkeypatch.setenv("CAIRN_STORE", reader_url(store_url, role))
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        assert "escape_rate" in at.metric[0].label and at.metric[0].value == "250"  # MoV read
        at.switch_page("app_pages/runs.py").run()
        assert not at.exception, at.exception
        assert set(at.dataframe[0].value["name"]) == {"r18-baseline", "r18-again", "r18-lr",
                                                      "vit-small"}
        from dashboard import data

        with data.store().reading() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == role
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


@pg
def test_cairn_reader_role_creates_updates_and_drops(filled, role, tmp_dir, monkeypatch):
    monkeypatch.setenv("CAIRN_STORE", filled.store_url)
    monkeypatch.setenv("CAIRN_TEST_READER_PASSWORD", "s3cret")
    runner = CliRunner()
    made = runner.invoke(reader_role, [role, "--password-env", "CAIRN_TEST_READER_PASSWORD"])
    assert made.exit_code == 0, made.output
    assert f"created reader role {role}" in made.output
    assert f"CAIRN_STORE='postgresql+psycopg://{role}:PASSWORD@" in made.output
    again = runner.invoke(reader_role, [role])
    assert again.exit_code == 0 and f"updated reader role {role}" in again.output
    unset = runner.invoke(reader_role, [role, "--password-env", "CAIRN_NO_SUCH_VARIABLE"])
    assert unset.exit_code == 2 and "CAIRN_NO_SUCH_VARIABLE is not set" in unset.output
    dropped = runner.invoke(reader_role, [role, "--drop"])
    assert dropped.exit_code == 0 and f"dropped reader role {role}" in dropped.output
    with pytest.raises(ReaderRoleError, match="no such role"):
        drop_reader(filled.store_url, role)


def test_sqlite_has_no_roles(tmp_path):
    with pytest.raises(ReaderRoleError, match="SQLite has no roles"):
        grant_reader(f"sqlite:///{tmp_path / 'registry.db'}", "reader")
    assert not (tmp_path / "registry.db").exists()  # refused before anything was opened


@pg
def test_a_workspace_from_the_environment_names_the_reader(filled, role, monkeypatch):
    grant_reader(filled.store_url, role)
    monkeypatch.setenv("CAIRN_STORE", reader_url(filled.store_url, role))
    ws = load_workspace(filled.root).read_only()
    assert [r.name for r in registry.list_runs(workspace=ws)] == ["lr-0.01", "lr-0.1"]
