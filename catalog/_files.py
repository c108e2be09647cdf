"""The catalog directory: one folder per model, the card in its ``README.md``.

Later versions of a model may live in sub-folders (``<name>/v2/README.md``); every
``README.md`` under the catalog directory, except the directory's own, is a card. A card's
folder given on its own (``cairn catalog validate catalog/<name>``) includes its own card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from catalog._card import CARD_FILE, ModelCard, read_card
from catalog.errors import CardNotFoundError, CardSyntaxError, CatalogError
from registry.config import Workspace, load_workspace

__all__ = ["card_files", "catalog_dir", "latest", "load_cards", "split_ref", "version_key"]


def catalog_dir(workspace: Workspace | None = None) -> Path:
    """The catalog directory the workspace configuration names (``catalog`` key)."""
    return (workspace or load_workspace()).catalog_dir


def card_files(root: Path, *, catalog_root: Path | None = None) -> list[Path]:
    """Card files under ``root`` (a card file itself, or a folder), in path order.

    A folder's own ``README.md`` is a card unless the folder is the catalog directory
    ``catalog_root`` (default: ``root`` is taken to be one), whose README describes it."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise CatalogError(f"{root}: no such card file or catalog directory")
    own = catalog_root is not None and not _same_dir(root, catalog_root)
    found = []
    for path in root.rglob(CARD_FILE):
        parts = path.relative_to(root).parts
        if (own or len(parts) > 1) and not any(p.startswith(".") for p in parts):
            found.append(path)
    return sorted(found)


def load_cards(root: Path, *,
               catalog_root: Path | None = None) -> tuple[list[ModelCard], list[CardSyntaxError]]:
    """Every readable card under ``root`` and the syntax error of each unreadable one
    (``catalog_root`` as for :func:`card_files`)."""
    cards, broken = [], []
    for path in card_files(root, catalog_root=catalog_root):
        try:
            cards.append(read_card(path))
        except CardSyntaxError as exc:
            broken.append(exc)
    return cards, broken


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` (or ``name``) into its parts; a ``catalog:`` prefix is dropped."""
    name, sep, version = ref.removeprefix("catalog:").partition("@")
    if not name or (sep and not version):
        raise CatalogError(f"bad model card reference {ref!r}: use NAME or NAME@VERSION")
    return name, version or None


def version_key(version: str) -> list[tuple[int, int | str]]:
    """Natural order of versions: 2 < 10, 1.2 < 1.10."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", str(version))]


def latest(cards: Iterable[ModelCard], name: str, version: str | None) -> ModelCard:
    """The card ``name@version``, or the newest version not deprecated (else the newest)."""
    matching = [c for c in cards if c.name == name]
    if version is not None:
        matching = [c for c in matching if c.version == str(version)]
    if not matching:
        raise CardNotFoundError(name, version)
    ordered = sorted(matching, key=lambda c: (c.status != "deprecated", version_key(c.version)))
    return ordered[-1]
