"""Cards in the registry store: ``model_card`` rows plus a full-text document per card
(``card_fts`` on SQLite, ``card_text`` with a ``tsvector`` on PostgreSQL).

The card files stay the source of truth; :func:`index_cards` makes the rows match them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from catalog._card import ModelCard
from catalog._schema import STATUSES, CardProblem
from registry.store.schema import model_card
from registry.store.textindex import fts_phrase, write_documents

__all__ = ["IndexResult", "card_rows", "index_cards", "matching_ids", "row_to_card"]


@dataclass
class IndexResult:
    """What :func:`index_cards` did."""

    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[CardProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{len(self.indexed)} card(s) indexed, {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed, {len(self.skipped)} skipped")


def index_cards(store: Any, cards: Sequence[ModelCard]) -> IndexResult:
    """Make the store's cards those given: insert or update changed ones, drop the rest."""
    result = IndexResult()
    wanted: dict[tuple[str, str], ModelCard] = {}
    for card in cards:
        reason = _unindexable(card, wanted)
        if reason:
            result.skipped.append(CardProblem(card.location(), card.line_of("name"), None,
                                              f"not indexed: {reason}"))
        else:
            wanted[(card.name, card.version)] = card
    with store.writing() as conn:
        existing = {(r.name, r.version): r for r in conn.execute(
            select(model_card.c.id, model_card.c.name, model_card.c.version,
                   model_card.c.sha256, model_card.c.path))}
        for key, card in wanted.items():
            row = existing.get(key)
            if row is not None and row.sha256 == card.sha256 and row.path == str(card.path):
                result.unchanged.append(card.ref)
                continue
            card_id = _upsert(conn, card, row.id if row is not None else None)
            _write_document(conn, card_id, document(card))
            result.indexed.append(card.ref)
        gone = [row for key, row in existing.items() if key not in wanted]
        _remove(conn, [row.id for row in gone])
        result.removed = [f"{row.name}@{row.version}" for row in gone]
    return result


def _unindexable(card: ModelCard, wanted: dict[tuple[str, str], ModelCard]) -> str | None:
    if not card.name or not card.version:
        return "the card needs a name and a version"
    if card.status not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}"
    if len(card.name) > 200 or len(card.version) > 50:
        return "name or version too long"
    if (card.name, card.version) in wanted:
        return f"{card.ref} is also {wanted[(card.name, card.version)].location()}"
    return None


def _upsert(conn: Connection, card: ModelCard, card_id: int | None) -> int:
    values = {
        "name": card.name, "version": card.version, "status": card.status,
        "project": _short(card.project, 200), "owner": _short(card.owner, 200),
        "backbone": _short(card.backbone, 300), "path": str(card.path or ""),
        "sha256": card.sha256, "front_matter": card.front_matter, "body": card.body,
        "indexed_time": time.time(),
    }
    if card_id is None:
        return conn.execute(insert(model_card).values(**values)
                            .returning(model_card.c.id)).scalar_one()
    conn.execute(update(model_card).where(model_card.c.id == card_id).values(**values))
    return card_id


def _short(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def document(card: ModelCard) -> str:
    """The searchable text of a card: identity, metadata values and the body."""
    fm = card.front_matter
    parts = [card.name, card.version, card.status, card.project, card.owner, card.backbone]
    for key in ("license", "library_name", "pipeline_tag", "intended_use", "limitations"):
        parts.append(fm.get(key) if isinstance(fm.get(key), str) else None)
    for key in ("tags", "datasets", "metrics"):
        parts.extend(_texts(fm.get(key)))
    parts.extend(card.labels)
    parts.extend(_texts([r.get("name") for r in fm.get("model-index") or []
                         if isinstance(r, dict)]))
    parts.append(card.body)
    return "\n".join(str(p) for p in parts if p)


def _texts(values: Any) -> list[str]:
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values if isinstance(v, (str, int, float))] \
        if isinstance(values, list) else []


def _write_document(conn: Connection, card_id: int, doc: str) -> None:
    write_documents(conn, {card_id: doc}, sqlite_table="card_fts", pg_table="card_text",
                    pg_key="card_id")


def _remove(conn: Connection, ids: Iterable[int]) -> None:
    ids = list(ids)
    if not ids:
        return
    if conn.dialect.name == "sqlite":  # FTS5 tables have no foreign keys to cascade
        conn.execute(text("DELETE FROM card_fts WHERE rowid = :id"), [{"id": i} for i in ids])
    conn.execute(delete(model_card).where(model_card.c.id.in_(ids)))


def matching_ids(conn: Connection, words: str) -> dict[int, float]:
    """Card ids whose text holds every word of ``words``, with a relevance (higher: better).
    Every word is a bound value, quoted for FTS5, so no search syntax can be injected."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT rowid, bm25(card_fts) FROM card_fts "
                                 "WHERE card_fts MATCH :q"), {"q": fts_phrase(words)})
        return {int(i): -float(score) for i, score in rows}  # bm25: lower is better
    rows = conn.execute(text("SELECT card_id, ts_rank(tsv, plainto_tsquery('simple', :q)) "
                             "FROM card_text WHERE tsv @@ plainto_tsquery('simple', :q)"),
                        {"q": words})
    return {int(i): float(score) for i, score in rows}


def card_rows(conn: Connection, ids: Iterable[int] | None = None,
              columns: dict[str, str] | None = None) -> list[Any]:
    """Card rows, optionally only these ids and those whose columns equal the given values
    (case-insensitive)."""
    query = select(model_card).order_by(model_card.c.name, model_card.c.version)
    if ids is not None:
        query = query.where(model_card.c.id.in_(list(ids)))
    for column, value in (columns or {}).items():
        query = query.where(func.lower(model_card.c[column]) == value.lower())
    return list(conn.execute(query))


def row_to_card(row: Any) -> ModelCard:
    """A card from its stored row (no line numbers: those belong to the file)."""
    front = row.front_matter
    if isinstance(front, str):  # some drivers hand JSON back as text
        front = json.loads(front)
    return ModelCard(front_matter=dict(front), body=row.body,
                     path=Path(row.path) if row.path else None, sha256=row.sha256)
