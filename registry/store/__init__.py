"""The registry store: a SQLAlchemy URL in, plain records out.

``SqlStore`` owns the engine and the transactions and reads and writes runs; the SQL itself
lives in ``_writes`` and ``_reads``. Every driver error leaves here as a
:mod:`registry.errors` store error. The rest of the registry's SQL is here too, one public
module per concern, each a few functions that take an open store:

- :mod:`.mov`: MoV definitions and measurements;
- :mod:`.similar`: the candidates of "has this been tried?";
- :mod:`.backup`: whole runs, projects and MoV, read and restored for a backup;
- :mod:`.links`: the MLflow bridge's links between registry and MLflow runs;
- :mod:`.cards`: the catalog's index of model cards and its full-text search;
- :mod:`.overview`: the dashboard's aggregates (facets, activity, duplicated fingerprints);
- :mod:`.textindex`: the runs' and cards' full-text documents (SQLite FTS5, PostgreSQL
  ``tsvector``);
- :mod:`.roles`: a PostgreSQL login role that may only read the store;
- :mod:`.schema` and ``migrations/``: the tables, and Alembic's upgrades between revisions.

The query compiler (:mod:`registry.query`) is the one other place that builds SQL.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from registry._history import Chunk, Columns
from registry._params import ParamValue
from registry.entities import DatasetUse, MetricPoint, MetricSummary, RunRecord
from registry.errors import StoreReadOnlyError
from registry.store import _reads, _writes, textindex
from registry.store._engine import (
    make_engine,
    normalise_url,
    read_options,
    safe_url,
    sqlite_path,
    translate_errors,
)
from registry.store._migrate import check_schema, ensure_schema
from registry.store.schema import run

__all__ = ["SqlStore", "normalise_url", "open_store", "safe_url", "sqlite_path"]

_STORES: dict[tuple[str, bool], SqlStore] = {}
_TEXT_FIELDS = frozenset({"name", "owner", "question", "notes", "conclusion"})


class SqlStore:
    """A registry store on SQLite or PostgreSQL.

    ``readonly`` opens it so that nothing can be written: SQLite with ``mode=ro``, PostgreSQL
    sessions with ``default_transaction_read_only``; :meth:`writing` raises
    :class:`~registry.errors.StoreReadOnlyError` before touching the database, and the schema
    is never migrated: a store at an older revision is refused with
    :class:`~registry.errors.SchemaOutdatedError` until a writable open upgrades it.
    """

    def __init__(self, url: str, *, readonly: bool = False, migrate: bool = True) -> None:
        self.url = normalise_url(url)
        self.readonly = readonly
        self._snapshot = threading.local()  # the read transaction snapshot() holds, per thread
        with translate_errors(self.url):
            self.engine = make_engine(self.url, readonly=readonly)
            if migrate and not readonly:
                ensure_schema(self.engine, safe_url(self.url))
            elif readonly:
                check_schema(self.engine, safe_url(self.url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error."""
        if self.readonly:
            raise StoreReadOnlyError(safe_url(self.url))
        if self._held() is not None:
            # A writable PostgreSQL store keeps one connection: the snapshot holds it.
            raise RuntimeError("write after the snapshot() block, not inside it")
        with translate_errors(self.url), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction (inside :meth:`snapshot`, the snapshot's)."""
        held = self._held()
        if held is not None:
            yield held
            return
        with self._read_transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads made in this block, by this thread, share one read transaction: one
        consistent view of the store and one round of connection set-up, for a caller that
        reads through several store functions. Writing inside the block is an error."""
        if self._held() is not None:
            yield
            return
        # SQLite in WAL mode reads one snapshot per transaction; PostgreSQL needs REPEATABLE
        # READ for that (its READ COMMITTED shows each statement the latest commits).
        repeatable = {"isolation_level": "REPEATABLE READ"} if self.dialect == "postgresql" else {}
        with self._read_transaction(**repeatable) as conn:
            self._snapshot.conn = conn
            try:
                yield
            finally:
                self._snapshot.conn = None

    def _held(self) -> Connection | None:
        """The connection of this thread's snapshot, if it is inside one."""
        return getattr(self._snapshot, "conn", None)

    @contextlib.contextmanager
    def _read_transaction(self, **options: Any) -> Iterator[Connection]:
        with translate_errors(self.url), self.engine.connect() as conn:
            conn = conn.execution_options(**read_options(), **options)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, project: str, values: Mapping[str, Any],
                   params: Mapping[str, ParamValue], tags: Mapping[str, str]) -> int:
        """Insert a new run with its params and tags; returns its integer key."""
        with self.writing() as conn:
            project_id = _writes.ensure_project(conn, project)
            pk = _writes.insert_run(conn, {**values, "project_id": project_id})
            _writes.insert_params(conn, pk, params)
            _writes.set_tags(conn, pk, tags)
            textindex.refresh(conn, [pk])
        return pk

    def update_run(self, run_pk: int, **values: Any) -> None:
        with self.writing() as conn:
            _writes.update_run(conn, run_pk, values)
            if _TEXT_FIELDS.intersection(values):
                textindex.refresh(conn, [run_pk])

    def append_notes(self, run_pk: int, text: str) -> None:
        """Add a paragraph to a run's notes (atomically, whoever else is writing)."""
        with self.writing() as conn:
            paragraph = func.coalesce(run.c.notes + "\n\n", "") + text
            conn.execute(update(run).where(run.c.pk == run_pk).values(notes=paragraph))
            textindex.refresh(conn, [run_pk])

    def log_params(self, run_pk: int, params: Mapping[str, ParamValue]) -> None:
        with self.writing() as conn:
            _writes.insert_params(conn, run_pk, params)
            textindex.refresh(conn, [run_pk])

    def set_tags(self, run_pk: int, tags: Mapping[str, str]) -> None:
        with self.writing() as conn:
            _writes.set_tags(conn, run_pk, tags)
            textindex.refresh(conn, [run_pk])

    def log_metrics(self, run_pk: int, chunks: Iterable[Chunk],
                    summaries: Iterable[MetricSummary], **run_values: Any) -> int:
        """Append history chunks and replace summaries in one transaction (plus run columns,
        such as the heartbeat); returns the number of points written."""
        with self.writing() as conn:
            count = _writes.insert_chunks(conn, run_pk, chunks)
            _writes.upsert_summaries(conn, run_pk, summaries)
            if run_values:
                _writes.update_run(conn, run_pk, run_values)
        return count

    def append_metrics(self, run_pk: int, values: Mapping[str, float], when: float) -> int:
        """One point per metric after what the run holds (next seq and step), summaries
        updated, in one transaction: measurements made after a run ended."""
        with self.writing() as conn:
            ends = _reads.history_ends(conn, run_pk, list(values))
            chunks = [(key, seq + 1, [step + 1], [value], [when])
                      for key, value in values.items()
                      for seq, step in [ends.get(key, (-1, -1))]]
            count = _writes.insert_chunks(conn, run_pk, chunks)
            _writes.upsert_summaries(conn, run_pk, _reads.summaries_with(conn, run_pk, chunks))
        return count

    def add_dataset_use(self, run_pk: int, use: DatasetUse) -> None:
        with self.writing() as conn:
            _writes.add_dataset_use(conn, run_pk, use)

    def add_artifact(self, run_pk: int, name: str, sha256: str, size: int, uri: str,
                     created_time: float | None = None) -> None:
        with self.writing() as conn:
            _writes.add_artifact(conn, run_pk, name, sha256, size, uri, created_time)

    def add_artifacts(self, run_pk: int,
                      rows: Sequence[tuple[str, str, int, str, float | None]]) -> None:
        """Several artifact rows (name, sha256, size, uri, created time) in one transaction."""
        if rows:
            with self.writing() as conn:
                _writes.add_artifacts(conn, run_pk, rows)

    def delete_run(self, run_pk: int) -> None:
        with self.writing() as conn:
            conn.execute(delete(run).where(run.c.pk == run_pk))
            textindex.forget(conn, [run_pk])

    # -- reads ------------------------------------------------------------------------------

    def resolve(self, ref: str) -> int:
        """The integer key of a run given by id, id prefix or unique name."""
        with self.reading() as conn:
            return _reads.resolve_run(conn, ref)

    def resolve_all(self, refs: Sequence[str]) -> list[int]:
        """The integer keys of several runs (see :meth:`resolve`), in one transaction."""
        with self.reading() as conn:
            return [_reads.resolve_run(conn, ref) for ref in refs]

    def get_run(self, ref: str | int) -> RunRecord:
        with self.reading() as conn:
            pk = ref if isinstance(ref, int) else _reads.resolve_run(conn, ref)
            return _reads.get_runs(conn, [pk])[0]

    def get_runs(self, pks: Sequence[int], *, details: bool = True) -> list[RunRecord]:
        with self.reading() as conn:
            return _reads.get_runs(conn, pks, details=details)

    def list_runs(self, *, details: bool = False, **filters: Any) -> list[RunRecord]:
        """Runs newest first; filters: project_name, owner, status, since, parent_id, limit,
        offset."""
        with self.reading() as conn:
            return _reads.get_runs(conn, _reads.list_run_pks(conn, **filters), details=details)

    def run_keys(self, **filters: Any) -> list[int]:
        """Integer keys of runs, newest first; the same filters as :meth:`list_runs`."""
        with self.reading() as conn:
            return _reads.list_run_pks(conn, **filters)

    def run_exists(self, run_id: str) -> bool:
        return self.key_of(run_id) is not None

    def key_of(self, run_id: str) -> int | None:
        """The integer key of the run with this full id, if the store has it."""
        with self.reading() as conn:
            return conn.execute(select(run.c.pk).where(run.c.id == run_id)).scalar()

    def keys_of(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Integer keys of the runs with these full ids (ids it lacks are left out)."""
        with self.reading() as conn:
            return _reads.keys_of(conn, run_ids)

    def metric_columns(self, run_pks: Sequence[int],
                       keys: Sequence[str] | None = None) -> list[dict[str, Columns]]:
        """Each run's metric histories as (steps, values, times) arrays, in logging order."""
        with self.reading() as conn:
            return [_reads.metric_columns(conn, pk, keys) for pk in run_pks]

    def stored_chunks(self, run_pk: int, chunks: Sequence[Chunk]) -> set[tuple[str, int]]:
        """Which of ``chunks`` (by key and seq) the run's history already holds: a writer
        whose commit may or may not have happened asks before trying again."""
        if not chunks:
            return set()
        with self.reading() as conn:
            return _reads.stored_chunks(conn, run_pk, chunks)

    def summaries_with(self, run_pk: int, chunks: Sequence[Chunk]) -> list[MetricSummary]:
        """Each metric's summary over its stored history plus ``chunks`` (not yet stored)."""
        with self.reading() as conn:
            return _reads.summaries_with(conn, run_pk, chunks)

    def metric_history(self, ref: str | int,
                       keys: Sequence[str] | None = None) -> dict[str, list[MetricPoint]]:
        with self.reading() as conn:
            pk = ref if isinstance(ref, int) else _reads.resolve_run(conn, ref)
            return _reads.metric_history(conn, pk, keys)


def open_store(url: str, *, readonly: bool = False) -> SqlStore:
    """A shared store per URL and mode for this process (engines are expensive; pools are
    shared). Code that has a workspace calls ``workspace.open_store()``, which honours a
    read-only workspace."""
    key = (normalise_url(url), readonly)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = SqlStore(url, readonly=readonly)
    return store


def _after_fork() -> None:
    # A forked child (DataLoader workers, multiprocessing) must not reuse the parent's sockets.
    for store in _STORES.values():
        store.engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork)
