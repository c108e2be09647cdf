"""The free-text index over runs: names, questions, notes, conclusions, tags, param values.

SQLite keeps it in an FTS5 table ``run_fts`` (rowid = run.pk); PostgreSQL in ``run_text``
with a generated ``tsvector`` column under a GIN index. Both are derived data: rebuilt from
the run tables whenever those change, and by migration 0002 for older runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, bindparam, select, text, true

from registry.store.schema import param, run, tag

__all__ = ["fts_phrase", "matching", "refresh", "refresh_all", "write_documents"]

_BATCH = 500
_SQLITE = "SELECT rowid FROM run_fts WHERE run_fts MATCH :phrase"
_POSTGRES = "SELECT run_pk FROM run_text WHERE tsv @@ plainto_tsquery('simple', :phrase)"


def refresh(conn: Connection, run_pks: Sequence[int]) -> None:
    """Rebuild the text index entries of these runs."""
    for start in range(0, len(run_pks), _BATCH):
        docs = _documents(conn, run_pks[start:start + _BATCH])
        _write(conn, docs)


def refresh_all(conn: Connection) -> None:
    """Rebuild the whole index (used by migrations)."""
    refresh(conn, list(conn.execute(select(run.c.pk)).scalars()))


def matching(dialect: str, phrase: str) -> ColumnElement[bool]:
    """A condition on ``run.pk``: the run's text holds every word of ``phrase`` (an empty
    phrase matches every run). The phrase is a unique bind, so several can share a query."""
    if not phrase.strip():
        return true()
    if dialect == "sqlite":
        sql, value = _SQLITE, fts_phrase(phrase)
    else:
        sql, value = _POSTGRES, phrase
    sub = text(sql).bindparams(bindparam("phrase", value, unique=True))
    return run.c.pk.in_(sub.columns(pk=run.c.pk.type))


def fts_phrase(phrase: str) -> str:
    """An FTS5 query that matches every word of ``phrase``, whatever characters it holds:
    each word is quoted (quotes doubled), so no FTS5 syntax can be injected."""
    words = phrase.split()
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) or '""'


def _documents(conn: Connection, pks: Sequence[int]) -> dict[int, str]:
    parts: dict[int, list[str]] = defaultdict(list)
    rows = conn.execute(select(run.c.pk, run.c.name, run.c.owner, run.c.question, run.c.notes,
                               run.c.conclusion).where(run.c.pk.in_(pks)))
    for pk, *fields in rows:
        parts[pk].extend(f for f in fields if f)
    for pk, key, value in conn.execute(select(tag.c.run_pk, tag.c.key, tag.c.value)
                                       .where(tag.c.run_pk.in_(pks))):
        parts[pk].append(f"{key} {value}".strip())
    for pk, value in conn.execute(select(param.c.run_pk, param.c.value_text).where(
            param.c.run_pk.in_(pks), param.c.vtype.in_(("str", "json")))):
        parts[pk].append(value)
    return {pk: "\n".join(p) for pk, p in parts.items()}


def _write(conn: Connection, docs: dict[int, str]) -> None:
    write_documents(conn, docs, sqlite_table="run_fts", pg_table="run_text", pg_key="run_pk")


def write_documents(conn: Connection, docs: dict[int, str], *, sqlite_table: str,
                    pg_table: str, pg_key: str) -> None:
    """Replace the documents of these keys in a text index: an FTS5 table keyed by rowid on
    SQLite, a ``(key, document, tsv)`` table on PostgreSQL (runs here, cards in the catalog).
    The table names are this package's constants, never user input."""
    if not docs:
        return
    rows = [{"pk": pk, "doc": doc} for pk, doc in docs.items()]
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"DELETE FROM {sqlite_table} WHERE rowid = :pk"), rows)
        conn.execute(text(f"INSERT INTO {sqlite_table} (rowid, document) VALUES (:pk, :doc)"),
                     rows)
    else:
        conn.execute(text(
            f"INSERT INTO {pg_table} ({pg_key}, document) VALUES (:pk, :doc) "
            f"ON CONFLICT ({pg_key}) DO UPDATE SET document = excluded.document"), rows)


def forget(conn: Connection, run_pks: Iterable[int]) -> None:
    """Drop index entries of deleted runs (FTS5 tables have no foreign keys)."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM run_fts WHERE rowid = :pk"), [{"pk": p} for p in run_pks])
