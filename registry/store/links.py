"""The ``mlflow_link`` table: which MLflow run mirrors (or was the source of) a registry run,
per tracking URI, and a digest of what was last synchronised (the MLflow bridge's state)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from registry.store import _writes
from registry.store.schema import mlflow_link

__all__ = ["Link", "by_mlflow_id", "for_runs", "of_run", "save"]


@dataclass(frozen=True)
class Link:
    run_pk: int
    mlflow_run_id: str
    experiment_id: str
    direction: str  # "export" or "import"
    digest: str | None


def _link(row) -> Link:
    return Link(row.run_pk, row.mlflow_run_id, row.experiment_id, row.direction, row.digest)


def for_runs(store, uri: str, pks: Iterable[int]) -> dict[int, Link]:
    """Links of these runs to ``uri``, by run key."""
    pks = list(pks)
    found: dict[int, Link] = {}
    with store.reading() as conn:
        for start in range(0, len(pks), 500):
            query = select(mlflow_link).where(mlflow_link.c.tracking_uri == uri,
                                              mlflow_link.c.run_pk.in_(pks[start:start + 500]))
            found.update((row.run_pk, _link(row)) for row in conn.execute(query))
    return found


def by_mlflow_id(store, uri: str) -> dict[str, Link]:
    """Every link to ``uri``, by MLflow run id."""
    with store.reading() as conn:
        rows = conn.execute(select(mlflow_link).where(mlflow_link.c.tracking_uri == uri))
        return {row.mlflow_run_id: _link(row) for row in rows}


def save(store, uri: str, link: Link) -> None:
    """Record (or replace) a run's link to ``uri`` and its ``mlflow_run_id`` column."""
    with store.writing() as conn:
        _writes.upsert(conn, mlflow_link, [{
            "run_pk": link.run_pk, "tracking_uri": uri, "mlflow_run_id": link.mlflow_run_id,
            "experiment_id": link.experiment_id, "direction": link.direction,
            "digest": link.digest, "synced_time": time.time(),
        }], ("run_pk", "tracking_uri"))
        _writes.update_run(conn, link.run_pk, {"mlflow_run_id": link.mlflow_run_id})


def of_run(store, run_pk: int) -> list[tuple[str, Link]]:
    """Every link of one run: (tracking URI, link), by URI."""
    with store.reading() as conn:
        rows = conn.execute(select(mlflow_link).where(mlflow_link.c.run_pk == run_pk)
                            .order_by(mlflow_link.c.tracking_uri))
        return [(row.tracking_uri, _link(row)) for row in rows]
