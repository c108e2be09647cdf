"""Checks of dataset cards against the world: the DVC file that tracks the data now, and the
dataset cards a model card names.

A dataset whose DVC hash changed since its card was written is a **warning**, not an error:
the card still documents a real version (the one earlier runs used, and which links them to
it), so it stays valid; the warning names both hashes and how to document the new version.
``cairn catalog validate --strict`` makes it fail CI for teams that want every card current.
"""

from __future__ import annotations

from pathlib import Path

from catalog._card import ModelCard
from catalog._dataset_schema import dataset_hash
from catalog._files import split_ref
from catalog._schema import CardProblem
from catalog._weights import LOCK_FILE, dvc_out, lock_out
from catalog.errors import CatalogError

__all__ = ["check_dataset_hash", "check_dataset_refs"]


def check_dataset_hash(card: ModelCard) -> list[CardProblem]:
    """A warning when the DVC file no longer records the md5 the card documents."""
    md5 = dataset_hash(card)
    dvc = card.front_matter.get("dvc")
    path = dvc.get("path") if isinstance(dvc, dict) else None
    if not md5 or not isinstance(path, str) or card.folder is None:
        return []  # the schema says what is missing
    root = next((p for p in (card.folder, *card.folder.parents) if (p / ".dvc").is_dir()), None)
    if root is None:
        return [_warning(card, "dvc", "cannot check the DVC hash: the card is not inside a "
                                      "DVC repository")]
    source = dvc.get("source") if isinstance(dvc.get("source"), str) else f"{path}.dvc"
    if not (root / source).is_file():
        return [_warning(card, "dvc.source", f"DVC no longer tracks {path}: {root / source} "
                                             "does not exist (was the data moved or removed?)")]
    try:
        now = _recorded_md5(root, source, path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return [_warning(card, "dvc.source", f"cannot read {source}: {exc}")]
    except Exception as exc:  # yaml.YAMLError, without importing yaml here
        return [_warning(card, "dvc.source", f"{source} is not valid YAML: {exc}")]
    if now is None:
        return [_warning(card, "dvc.path", f"DVC no longer tracks {path} ({source} records "
                                           "no such output): was the data moved or removed?")]
    if now != md5:
        return [_warning(card, "dvc.md5", f"the data changed since the card was written: the "
                                          f"card documents md5 {md5}, {source} now records "
                                          f"{now}; `cairn data card {path}` drafts the card "
                                          "of the new version")]
    return []


def check_dataset_refs(card: ModelCard, dataset_names: set[str]) -> list[CardProblem]:
    """A warning for each entry of a model card's ``datasets:`` that no dataset card has."""
    datasets = card.front_matter.get("datasets")
    if not isinstance(datasets, list):
        return []
    problems = []
    for i, ref in enumerate(datasets):
        try:
            name = split_ref(str(ref))[0]
        except CatalogError:
            name = str(ref)
        if name not in dataset_names:
            problems.append(_warning(card, f"datasets[{i}]", f"no dataset card named {ref!r} "
                                     "in the catalog (`cairn data card PATH` drafts one)"))
    return problems


def _recorded_md5(root: Path, source: str, path: str) -> str | None:
    """The md5 ``source`` (a ``.dvc`` file or a ``dvc.lock``) records for ``path``, or None
    when it records no such output."""
    tracking = root / source
    if tracking.name == LOCK_FILE:
        out = lock_out(tracking, root / path)
    else:
        out = dvc_out(tracking)
        tracked = (tracking.parent / str(out.get("path", ""))).resolve()
        out = out if tracked == (root / path).resolve() else None
    md5 = out.get("md5") if out else None
    return str(md5) if md5 else None


def _warning(card: ModelCard, key: str, message: str) -> CardProblem:
    return CardProblem(card.location(), card.line_of(key), key, message, "warning")
