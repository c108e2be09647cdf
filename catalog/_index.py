"""Cards in the registry store's index (:mod:`registry.store.cards`): which cards can be
indexed, the searchable text of each, and the conversions between a card and its row.

The card files stay the source of truth; :func:`index_cards` makes the index match them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog._card import ModelCard
from catalog._schema import STATUSES, CardProblem
from registry.store import cards as stored

__all__ = ["IndexResult", "document", "index_cards", "stored_cards", "to_card"]


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
    """Make the store's index hold these cards: changed ones rewritten, the rest dropped;
    a card that cannot be indexed is skipped and said why."""
    skipped: list[CardProblem] = []
    wanted: dict[tuple[str, str], ModelCard] = {}
    for card in cards:
        reason = _unindexable(card, wanted)
        if reason:
            skipped.append(CardProblem(card.location(), card.line_of("name"), None,
                                       f"not indexed: {reason}"))
        else:
            wanted[(card.name, card.version)] = card
    changes = stored.replace_all(store, [_row(card) for card in wanted.values()])
    return IndexResult(changes.indexed, changes.unchanged, changes.removed, skipped)


def stored_cards(store: Any, name: str | None = None) -> list[ModelCard]:
    """Indexed cards (of one name), as cards without line numbers."""
    return [to_card(row) for row in stored.rows(store, {"name": name} if name else None)]


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


def _row(card: ModelCard) -> stored.CardRow:
    return stored.CardRow(name=card.name, version=card.version, status=card.status,
                          project=card.project, owner=card.owner, backbone=card.backbone,
                          path=str(card.path or ""), sha256=card.sha256,
                          front_matter=card.front_matter, body=card.body,
                          document=document(card))


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
    parts.extend(_dataset_text(fm))
    parts.append(card.body)
    return "\n".join(str(p) for p in parts if p)


def _dataset_text(fm: dict[str, Any]) -> list[str]:
    """A dataset card's own searchable values: name, tasks, classes, DVC path and hash,
    annotation and collection (empty for model cards)."""
    if fm.get("kind") != "dataset":
        return []
    parts = [fm.get("pretty_name"), *_texts(fm.get("task_categories"))]
    parts += [c.get("name") for c in fm.get("classes") or [] if isinstance(c, dict)]
    for key in ("dvc", "annotation", "collection"):
        value = fm.get(key)
        parts += _texts(list(value.values())) if isinstance(value, dict) else []
    return [str(p) for p in parts if isinstance(p, (str, int, float))]


def _texts(values: Any) -> list[str]:
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values if isinstance(v, (str, int, float))] \
        if isinstance(values, list) else []


def to_card(row: stored.CardRow) -> ModelCard:
    """A card from its indexed row (no line numbers: those belong to the file)."""
    return ModelCard(front_matter=dict(row.front_matter), body=row.body,
                     path=Path(row.path) if row.path else None, sha256=row.sha256)
