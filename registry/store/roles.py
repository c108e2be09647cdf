"""A PostgreSQL login role that can read a store and write nothing (for the dashboard).

:func:`grant_reader` creates the role, or brings an existing one back to read-only, with
``LOGIN``, ``default_transaction_read_only = on``, ``CONNECT`` on the database, ``USAGE`` on
the store's schema, ``SELECT`` on every table and sequence in that schema (every other
privilege there revoked) and default privileges, so tables that later migrations create are
readable too. Privileges are what stop writes: the role may turn the read-only default off
for its session and still write nothing. A password is hashed (SCRAM) by libpq on this
machine, so the clear text reaches neither the server nor its logs. SQLite has no roles:
readers get read permission on the file, and the dashboard opens it with ``mode=ro``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from registry.errors import StoreError
from registry.store import SqlStore
from registry.store._engine import normalise_url

if TYPE_CHECKING:
    from psycopg import sql

__all__ = ["ReaderGrant", "ReaderRoleError", "drop_reader", "grant_reader", "reader_sql",
           "reader_url"]

MAX_NAME_BYTES = 63  # PostgreSQL cuts longer names (NAMEDATALEN - 1) without a word
_GRANTS = (
    "ALTER ROLE {role} SET default_transaction_read_only = on",
    "GRANT CONNECT ON DATABASE {database} TO {role}",
    "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
    "REVOKE CREATE ON SCHEMA {schema} FROM {role}",
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    # Tables and sequences the store's owner creates later (migrations) are readable too.
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
    "GRANT SELECT ON SEQUENCES TO {role}",
)
_DROPS = ("DROP OWNED BY {role}", "DROP ROLE {role}")


class ReaderRoleError(StoreError):
    """A read-only role cannot be made (or dropped) as asked."""

    def __init__(self, role: str, reason: str) -> None:
        self.role, self.reason = role, reason
        super().__init__(f"reader role {role!r}: {reason}")


@dataclass(frozen=True)
class ReaderGrant:
    """Where a reader role reads: the database, the store's schema, the role that owns the
    store's tables (whose future tables it may read too), and whether the role is new."""

    role: str
    database: str
    schema: str
    owner: str
    new: bool


def grant_reader(url: str, role: str, password: str | None = None, *,
                 migrate: bool = True) -> ReaderGrant:
    """Create or update ``role`` so that it can read the store at ``url`` and write nothing;
    idempotent. Run it as the store's owner or a superuser. The store is created or upgraded
    first (unless ``migrate`` is false); tables of later upgrades are readable all the same.
    ``password`` None keeps the role's current password."""
    with _owner_store(url, role, migrate) as store, store.writing() as conn:
        grant = _grant_for(conn, role)
        secret = None if password is None else _scram(conn, role, password)
        _run(conn, reader_sql(grant, secret))
        _check_read_only(conn, grant)
    return grant


def drop_reader(url: str, role: str) -> None:
    """Remove a reader role: its privileges on this database, then the role itself."""
    with _owner_store(url, role, migrate=False) as store, store.writing() as conn:
        grant = _grant_for(conn, role)
        if grant.new:
            raise ReaderRoleError(role, "no such role")
        _run(conn, [_format(statement, grant) for statement in _DROPS])


def reader_sql(grant: ReaderGrant, password_hash: str | None = None) -> list[sql.Composed]:
    """The statements :func:`grant_reader` runs, names quoted as identifiers."""
    from psycopg import sql

    create = "CREATE ROLE {role} LOGIN" if grant.new else "ALTER ROLE {role} LOGIN"
    statements = [_format(create, grant)]
    if password_hash is not None:
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(grant.role), sql.Literal(password_hash)))
    return statements + [_format(statement, grant) for statement in _GRANTS]


def reader_url(url: str, role: str, password: str | None = None) -> str:
    """The store's URL with ``role`` (and ``password``) in place of the owner's."""
    return make_url(normalise_url(url)).set(username=role, password=password).render_as_string(
        hide_password=False)


def _owner_store(url: str, role: str, migrate: bool) -> contextlib.closing[SqlStore]:
    if not role or len(role.encode()) > MAX_NAME_BYTES:
        raise ReaderRoleError(role, f"a role name has 1 to {MAX_NAME_BYTES} bytes")
    if make_url(normalise_url(url)).get_backend_name() != "postgresql":
        raise ReaderRoleError(role, "SQLite has no roles: give readers read permission on "
                                    "the file only; the dashboard opens it read-only")
    return contextlib.closing(SqlStore(url, migrate=migrate))


def _grant_for(conn: Connection, role: str) -> ReaderGrant:
    """Where the store lives, and a refusal for roles that must never be made read-only."""
    database, schema, me = conn.execute(
        text("SELECT current_database(), current_schema(), current_user")).one()
    owner = conn.execute(text(
        "SELECT tableowner FROM pg_tables WHERE schemaname = :schema "
        "AND tablename = 'alembic_version'"), {"schema": schema}).scalar()
    if owner is None:
        raise ReaderRoleError(role, f"schema {schema!r} of database {database!r} holds no "
                                    "Cairn store (create it first: cairn init)")
    found = conn.execute(text(
        "SELECT rolsuper OR rolbypassrls OR rolcreaterole, pg_has_role(oid, :owner, 'MEMBER') "
        "FROM pg_roles WHERE rolname = :role"), {"owner": owner, "role": role}).one_or_none()
    if role == me:
        raise ReaderRoleError(role, "is the role running this command")
    if found is not None and found[0]:
        raise ReaderRoleError(role, "is a superuser, bypasses row security or may create "
                                    "roles: privileges cannot stop it writing")
    if found is not None and found[1]:
        raise ReaderRoleError(role, f"owns the store or is a member of its owner {owner!r}, "
                                    "so it can write whatever the owner can")
    return ReaderGrant(role, database, schema, owner, new=found is None)


def _check_read_only(conn: Connection, grant: ReaderGrant) -> None:
    """Refuse (rolling everything back) a role that can still write in the schema through
    another role it belongs to, or through PUBLIC (PostgreSQL 14 and older let every role
    create tables in ``public``)."""
    params = {"role": grant.role, "schema": grant.schema}
    writable = conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'S') AND CASE c.relkind "
        "WHEN 'S' THEN has_sequence_privilege(:role, c.oid, 'USAGE, UPDATE') "
        "ELSE has_table_privilege(:role, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, "
        "TRIGGER') END ORDER BY c.relname"), params).scalars().all()
    if writable:
        raise ReaderRoleError(grant.role, f"can still write {', '.join(writable)} through a "
                                          "role it belongs to; revoke that membership first")
    if conn.execute(text("SELECT has_schema_privilege(:role, :schema, 'CREATE')"),
                    params).scalar_one():
        raise ReaderRoleError(grant.role, f"can create tables in schema {grant.schema!r} "
                                          f"(granted to PUBLIC?): REVOKE CREATE ON SCHEMA "
                                          f"{grant.schema} FROM PUBLIC first")


def _scram(conn: Connection, role: str, password: str) -> str:
    """The password as a SCRAM verifier, made by libpq here (PQencryptPasswordConn)."""
    pgconn = conn.connection.driver_connection.pgconn
    return pgconn.encrypt_password(password.encode(), role.encode()).decode()


def _format(statement: str, grant: ReaderGrant) -> sql.Composed:
    from psycopg import sql

    return sql.SQL(statement).format(
        role=sql.Identifier(grant.role), database=sql.Identifier(grant.database),
        schema=sql.Identifier(grant.schema), owner=sql.Identifier(grant.owner))


def _run(conn: Connection, statements: list[sql.Composed]) -> None:
    driver = conn.connection.driver_connection
    # No parameters: the driver must not read "%" in a quoted name as a placeholder.
    raw = conn.execution_options(no_parameters=True)
    for statement in statements:
        raw.exec_driver_sql(statement.as_string(driver))
