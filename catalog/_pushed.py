"""Whether others can fetch what a card documents: a warning from ``cairn catalog validate``
when a dataset card's data, or a model card's DVC-tracked weights, are not in the DVC remote.

Asked of DVC's own files and the remote (one existence check per card, time-bounded, see
``registry.capture.dvc``): ``pushed`` false is a warning naming ``dvc push``; unknown (no
remote configured, or it did not answer) says nothing, as the card may be used where the
remote is reachable.
"""

from __future__ import annotations

from pathlib import Path

from catalog._card import ModelCard
from catalog._schema import CardProblem, card_kind
from catalog._weights import weights_location
from catalog.errors import CatalogError

__all__ = ["check_pushed"]


def check_pushed(card: ModelCard) -> list[CardProblem]:
    """A warning when the card's data or weights are not in the DVC remote."""
    found = _target(card)
    if found is None:
        return []
    field, path = found
    if not path.exists():
        return []  # a missing file is the weights' or the DVC hash check's to report
    from registry.capture.dvc import capture_data

    version, _ = capture_data(path)
    if version.pushed is not False:
        return []
    what = "data" if card_kind(card) == "dataset" else "weights"
    return [CardProblem(card.location(), card.line_of(field), field,
                        f"the {what} ({version.path}, md5 {version.hash}) are not in the DVC "
                        "remote, so nobody else can fetch them: run `dvc push`", "warning")]


def _target(card: ModelCard) -> tuple[str, Path] | None:
    """(field, local path) of what the card documents through DVC, or None."""
    if card.folder is None:
        return None
    if card_kind(card) == "dataset":
        dvc = card.front_matter.get("dvc")
        path = dvc.get("path") if isinstance(dvc, dict) else None
        root = next((p for p in (card.folder, *card.folder.parents) if (p / ".dvc").is_dir()),
                    None)
        return ("dvc.path", root / path) if isinstance(path, str) and root else None
    if not isinstance(card.weights.get("dvc"), str):
        return None
    try:
        return "weights.dvc", weights_location(card)
    except CatalogError:
        return None
