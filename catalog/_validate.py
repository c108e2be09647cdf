"""``validate``: every problem of every card (model and dataset cards) under a path, for
people and for CI."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from catalog._card import ModelCard
from catalog._checks import check_runs, check_weights
from catalog._dataset_checks import check_dataset_hash, check_dataset_refs
from catalog._dataset_schema import check_dataset_card
from catalog._files import card_files, load_cards
from catalog._pushed import check_pushed
from catalog._schema import CardProblem, card_kind, check_card
from registry.config import Workspace, load_workspace
from registry.errors import StoreError

__all__ = ["card_problems", "has_errors", "validate"]


def validate(path: str | Path | None = None, *, workspace: Workspace | None = None,
             check_runs_exist: bool = True) -> list[CardProblem]:
    """Problems of the card at ``path`` (a card file or a card's folder), of every card under
    it, or (no path) of the whole catalog directory: schema errors with file and line, runs
    the registry does not hold, weights that are missing or do not match their sha256, labels
    that do not fit the head; for dataset cards, data whose DVC hash changed since the card
    was written; for model cards, named dataset cards that do not exist. Warnings (a draft's
    unwritten parts, a changed dataset) are included; :func:`has_errors` tells them apart.
    A ``path`` holding no card is an error."""
    ws = workspace or load_workspace()
    root = Path(path) if path is not None else ws.catalog_dir
    if path is None and not root.exists():
        return [CardProblem(str(root), None, None, "the catalog directory does not exist "
                                                   "(workspace setting 'catalog')", "warning")]
    files = card_files(root, catalog_root=ws.catalog_dir)
    if not files:
        return [_no_cards(root, given=path is not None)]
    cards, broken = load_cards(root, catalog_root=ws.catalog_dir)
    problems = [CardProblem(exc.path, exc.line, None, exc.reason) for exc in broken]
    store = _store(ws) if check_runs_exist and any(c.runs for c in cards) else None
    datasets = _dataset_names(ws, cards) if any(c.front_matter.get("datasets")
                                                for c in cards) else set()
    for card in cards:
        problems += card_problems(card, store, datasets)
    return problems + _duplicates(cards)


def card_problems(card: ModelCard, store: Any = None,
                  dataset_names: set[str] | None = None) -> list[CardProblem]:
    """Problems of one card. A model card: schema, weights, (given a store) runs and (given
    the catalog's dataset card names) the dataset cards it names; a dataset card: schema
    and its DVC hash now; either: whether what it documents is in the DVC remote."""
    if card_kind(card) == "dataset":
        problems = check_dataset_card(card) + check_dataset_hash(card) + check_pushed(card)
    else:
        problems = check_card(card) + check_weights(card) + check_pushed(card)
        if store is not None:
            problems += check_runs(card, store)
        if dataset_names is not None:
            problems += check_dataset_refs(card, dataset_names)
    return sorted(problems, key=lambda p: (p.line or 0, p.field or ""))


def has_errors(problems: list[CardProblem]) -> bool:
    return any(p.severity == "error" for p in problems)


def _no_cards(root: Path, given: bool) -> CardProblem:
    """No card at ``root``: an error for a path given (a typo must not pass CI), a warning
    for a workspace's catalog directory that has none yet."""
    return CardProblem(str(root), None, None,
                       "no cards found (a card is the README.md in its model's folder, or in "
                       "datasets/<name>/ for a dataset: give a card's folder, its README.md "
                       "or the catalog directory)", "error" if given else "warning")


def _duplicates(cards: list[ModelCard]) -> list[CardProblem]:
    by_ref: dict[str, list[ModelCard]] = defaultdict(list)
    for card in cards:
        if card.name and card.version:
            by_ref[card.ref].append(card)
    problems = []
    for ref, same in by_ref.items():
        for card in same[1:]:
            problems.append(CardProblem(card.location(), card.line_of("version"), "version",
                                        f"{ref} is also the card {same[0].location()}"))
    return problems


def _dataset_names(ws: Workspace, cards: list[ModelCard]) -> set[str]:
    """Names of the dataset cards in the catalog directory (and among ``cards``)."""
    every = load_cards(ws.catalog_dir)[0] if ws.catalog_dir.is_dir() else []
    return {c.name for c in [*every, *cards] if card_kind(c) == "dataset"}


def _store(ws: Workspace) -> Any:
    """The registry store, read-only, or the StoreError met opening it."""
    from registry.store import open_store

    try:
        return open_store(ws.store_url, readonly=True)
    except StoreError as exc:
        return exc
