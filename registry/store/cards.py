"""The catalog's index of model cards: ``model_card`` rows plus a full-text document per card
(``card_fts`` on SQLite, ``card_text`` with a ``tsvector`` on PostgreSQL).

The card files stay the source of truth; the catalog turns them into :class:`CardRow` values
and :func:`replace_all` makes the index match them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from registry.store.schema import model_card
from registry.store.textindex import fts_phrase, write_documents

__all__ = ["CardRow", "IndexChanges", "replace_all", "rows", "search"]

_LIMITS = {"project": 200, "owner": 200, "backbone": 300}  # column widths


@dataclass(frozen=True)
class CardRow:
    """One version of a model card as the index holds it; ``document`` is its searchable
    text (written, never read back)."""

    name: str
    version: str
    status: str
    project: str | None
    owner: str | None
    backbone: str | None
    path: str
    sha256: str
    front_matter: Mapping[str, Any]
    body: str
    document: str = field(default="", compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class IndexChanges:
    """What :func:`replace_all` did, by ``name@version``."""

    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def replace_all(store: Any, cards: Sequence[CardRow]) -> IndexChanges:
    """Make the index hold exactly ``cards`` (unique by name and version): insert new ones,
    rewrite changed ones (another digest or path), drop the rest; one transaction."""
    done = IndexChanges()
    wanted = {(c.name, c.version): c for c in cards}
    with store.writing() as conn:
        existing = {(r.name, r.version): r for r in conn.execute(
            select(model_card.c.id, model_card.c.name, model_card.c.version,
                   model_card.c.sha256, model_card.c.path))}
        for key, card in wanted.items():
            row = existing.get(key)
            if row is not None and row.sha256 == card.sha256 and row.path == card.path:
                done.unchanged.append(card.ref)
                continue
            card_id = _upsert(conn, card, row.id if row is not None else None)
            write_documents(conn, {card_id: card.document}, sqlite_table="card_fts",
                            pg_table="card_text", pg_key="card_id")
            done.indexed.append(card.ref)
        gone = [row for key, row in existing.items() if key not in wanted]
        _remove(conn, [row.id for row in gone])
        done.removed = [f"{row.name}@{row.version}" for row in gone]
    return done


def rows(store: Any, columns: Mapping[str, str] | None = None) -> list[CardRow]:
    """Indexed cards by name and version, only those whose columns equal the given values
    (case-insensitive), e.g. ``{"name": "scratch-detector"}``."""
    with store.reading() as conn:
        return [_card(r) for r in _select(conn, None, columns)]


def search(store: Any, words: str, columns: Mapping[str, str] | None = None
           ) -> list[tuple[CardRow, float]]:
    """Cards whose text holds every word of ``words``, with a relevance (higher: better),
    filtered by ``columns`` as in :func:`rows`. Every word is a bound value, quoted for FTS5,
    so no search syntax can be injected."""
    with store.reading() as conn:
        scores = _matching(conn, words)
        found = _select(conn, scores, columns) if scores else []
    return [(_card(r), scores[r.id]) for r in found]


def _upsert(conn: Connection, card: CardRow, card_id: int | None) -> int:
    values = {
        "name": card.name, "version": card.version, "status": card.status,
        "project": _short(card.project, "project"), "owner": _short(card.owner, "owner"),
        "backbone": _short(card.backbone, "backbone"), "path": card.path,
        "sha256": card.sha256, "front_matter": dict(card.front_matter), "body": card.body,
        "indexed_time": time.time(),
    }
    if card_id is None:
        return conn.execute(insert(model_card).values(**values)
                            .returning(model_card.c.id)).scalar_one()
    conn.execute(update(model_card).where(model_card.c.id == card_id).values(**values))
    return card_id


def _short(value: str | None, column: str) -> str | None:
    return value[:_LIMITS[column]] if value else None


def _remove(conn: Connection, ids: Iterable[int]) -> None:
    ids = list(ids)
    if not ids:
        return
    if conn.dialect.name == "sqlite":  # FTS5 tables have no foreign keys to cascade
        conn.execute(text("DELETE FROM card_fts WHERE rowid = :id"), [{"id": i} for i in ids])
    conn.execute(delete(model_card).where(model_card.c.id.in_(ids)))


def _matching(conn: Connection, words: str) -> dict[int, float]:
    if conn.dialect.name == "sqlite":
        found = conn.execute(text("SELECT rowid, bm25(card_fts) FROM card_fts "
                                  "WHERE card_fts MATCH :q"), {"q": fts_phrase(words)})
        return {int(i): -float(score) for i, score in found}  # bm25: lower is better
    found = conn.execute(text("SELECT card_id, ts_rank(tsv, plainto_tsquery('simple', :q)) "
                              "FROM card_text WHERE tsv @@ plainto_tsquery('simple', :q)"),
                         {"q": words})
    return {int(i): float(score) for i, score in found}


def _select(conn: Connection, ids: Iterable[int] | None,
            columns: Mapping[str, str] | None) -> list[Any]:
    query = select(model_card).order_by(model_card.c.name, model_card.c.version)
    if ids is not None:
        query = query.where(model_card.c.id.in_(list(ids)))
    for column, value in (columns or {}).items():
        query = query.where(func.lower(model_card.c[column]) == value.lower())
    return list(conn.execute(query))


def _card(row: Any) -> CardRow:
    front = row.front_matter
    if isinstance(front, str):  # some drivers hand JSON back as text
        front = json.loads(front)
    return CardRow(name=row.name, version=row.version, status=row.status, project=row.project,
                   owner=row.owner, backbone=row.backbone, path=row.path or "",
                   sha256=row.sha256, front_matter=dict(front or {}), body=row.body)
