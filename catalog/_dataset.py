"""``draft_dataset_card``: a dataset card for a DVC-tracked image folder, in Hugging Face's
dataset card format plus Cairn's fields, at ``<catalog>/datasets/<name>/README.md``.

The card documents one DVC version: the folder must be tracked (a ``PATH.dvc`` file or a
pipeline output) and match what DVC recorded, so the counts in the card are those of the
hash it names. Redrafting the same version needs ``force``; a folder whose hash changed gets
the next version of the card, beside the first (runs of the old data still link to it).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog._card import CARD_FILE, ModelCard
from catalog._dataset_body import body_of, known_issues
from catalog._dataset_scan import FolderScan, scan_folder, size_category
from catalog._dataset_schema import dataset_hash
from catalog._draft import dump_front_matter, index_quietly
from catalog._files import load_cards, version_key
from catalog._schema import NAME, PLACEHOLDER, VERSION, card_kind
from catalog.errors import CardExistsError, DatasetError, DatasetNotTrackedError
from registry.capture.dvc import DataVersion, capture_data
from registry.config import Workspace, load_workspace

__all__ = ["DATASETS_DIR", "DatasetDraft", "draft_dataset_card"]

DATASETS_DIR = "datasets"  # dataset cards live in <catalog>/datasets/<name>/
_EXAMPLES = 20  # duplicate groups listed in the front matter


@dataclass
class DatasetDraft:
    """A drafted dataset card, what was found in the folder and what to tell its author."""

    path: Path
    name: str
    version: str
    scan: FolderScan
    issues: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def draft_dataset_card(path: str | Path, *, name: str | None = None,
                       version: str | None = None, project: str | None = None,
                       force: bool = False,
                       workspace: Workspace | None = None) -> DatasetDraft:
    """Draft the card of the DVC-tracked image folder ``path`` (default name: the folder's).

    Raises DatasetNotTrackedError for a folder DVC does not track, DatasetError for one that
    differs from what DVC recorded or a name a model card has, CardExistsError when a card
    already documents this version (``force`` redrafts it)."""
    ws = workspace or load_workspace()
    folder = Path(os.path.abspath(path))
    data = _data_version(folder, str(path))
    name = _card_name(folder, name, str(path))
    if version is not None and not VERSION.match(str(version)):
        raise DatasetError(str(path), f"version {version!r}: use a version such as 1 or 1.2.0")
    cards = load_cards(ws.catalog_dir)[0] if ws.catalog_dir.is_dir() else []
    _name_is_free(cards, name, str(path))
    version, target = _target(ws.catalog_dir / DATASETS_DIR / name,
                              [c for c in cards if c.name == name], data, version, force)
    scan = scan_folder(folder)
    issues = known_issues(scan)
    front = _front_matter(data, scan, issues, name=name, version=version, project=project,
                          owner=ws.owner)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dump_front_matter(front) + body_of(front, scan, issues),
                      encoding="utf-8")
    notes: list[str] = []
    index_quietly(ws, notes)
    return DatasetDraft(target, name, version, scan, issues, notes)


def _data_version(folder: Path, given: str) -> DataVersion:
    """The DVC version of ``folder``, which must be a tracked folder of its own, unchanged."""
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise DatasetError(given, f"{what}; a dataset card documents a folder of images")
    data, warnings = capture_data(folder)
    if not data.tracked:
        raise DatasetNotTrackedError(given, warnings[-1] if warnings else "not tracked by DVC")
    root = next(p for p in (folder, *folder.parents) if (p / ".dvc").is_dir())
    if data.path != folder.relative_to(root).as_posix():
        raise DatasetError(given, f"it is inside {data.path}, which DVC tracks as a whole "
                                  f"({data.source}): draft the card of {data.path}")
    if not data.hash:
        raise DatasetError(given, f"{data.source} records no md5 for it: run `dvc commit`")
    if data.dirty:
        fix = ("`dvc repro` (or `dvc commit`)" if str(data.source).endswith("dvc.lock")
               else f"`dvc add {given}`")
        raise DatasetError(given, f"the folder differs from what {data.source} recorded "
                                  f"(md5 {data.hash}): run {fix} so the card documents a "
                                  f"recorded version, or `dvc checkout {given}`")
    return data


def _card_name(folder: Path, name: str | None, given: str) -> str:
    if name is not None:
        if not NAME.match(name):
            raise DatasetError(given, f"card name {name!r}: use letters, digits, '.', '_' "
                                      "and '-'")
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-._")[:100]
    if not slug:
        raise DatasetError(given, "the folder's name makes no card name: pass --name")
    return slug


def _name_is_free(cards: list[ModelCard], name: str, given: str) -> None:
    """Model and dataset cards share names (one index, ``get`` by name)."""
    model = next((c for c in cards if c.name == name and card_kind(c) != "dataset"), None)
    if model is not None:
        raise DatasetError(given, f"the model card {model.location()} is named {name!r}; "
                                  "pass another name (--name)")


def _target(folder: Path, same_name: list[ModelCard], data: DataVersion,
            version: str | None, force: bool) -> tuple[str, Path]:
    """The version and file of the new card: a card of this name documenting the same
    hash (or of the version asked) is redrafted only with ``force``; a changed hash gets
    the next version."""
    if version is None:
        same = [c for c in same_name if dataset_hash(c) == data.hash]
        if same:
            return _redraft(max(same, key=lambda c: version_key(c.version)), force)
        numbers = [int(c.version) for c in same_name if c.version.isdigit()]
        version = str(max(numbers, default=0) + 1)
    existing = next((c for c in same_name if c.version == str(version)), None)
    if existing is not None:
        return _redraft(existing, force)
    first = folder / CARD_FILE
    path = folder / f"v{version}" / CARD_FILE if first.exists() else first
    if path.exists() and not force:
        raise CardExistsError(str(path))
    return str(version), path


def _redraft(card: ModelCard, force: bool) -> tuple[str, Path]:
    if not force or card.path is None:
        raise CardExistsError(f"{card.location()} (documenting md5 {dataset_hash(card)})")
    return card.version, card.path


def _front_matter(data: DataVersion, scan: FolderScan, issues: list[str], *, name: str,
                  version: str, project: str | None, owner: str) -> dict[str, Any]:
    classes = scan.labels
    todo = PLACEHOLDER + ": "
    front: dict[str, Any] = {
        "license": todo + "a license identifier such as cc-by-4.0, mit or other",
        "pretty_name": name.replace("-", " ").replace("_", " ").capitalize(),
        "task_categories": ["image-classification"] if classes
        else [todo + "the task, e.g. image-classification or object-detection"],
        "size_categories": [size_category(scan.images)],
        "annotations_creators": [todo + "expert-generated, crowdsourced, machine-generated "
                                        "or found"],
        "source_datasets": [todo + "original, or extended|<the dataset it extends>"],
        "tags": [t for t in ("cairn", project) if t],
        "dataset_info": _dataset_info(classes, scan),
        "kind": "dataset", "name": name, "version": version, "status": "draft",
        "project": project, "owner": owner, "created": _dt.date.today().isoformat(),
        "dvc": {k: v for k, v in (("path", data.path), ("md5", data.hash),
                                  ("source", data.source), ("remote", data.remote),
                                  ("size", data.size), ("nfiles", data.nfiles))
                if v is not None},
        "classes": [{"name": c, "images": {s: scan.classes[c].get(s, 0) for s in scan.splits}}
                    for c in classes],
        "images": _images(scan), "duplicates": _duplicates(scan),
        "annotation": {"tool": todo + "the annotation tool (CVAT, Label Studio...) or none",
                       "format": "imagefolder: one folder per class"
                       + (", one folder per split above them" if scan.by_split else "")},
        "collection": {"who": todo + "who collected the images",
                       "how": todo + "how: camera, line, sampling, period"},
        "known_issues": issues,
    }
    return {k: v for k, v in front.items() if v not in (None, [], {})}


def _dataset_info(classes: list[str], scan: FolderScan) -> dict[str, Any]:
    """Hugging Face's ``dataset_info``: an image and a class label, examples per split."""
    label = {"class_label": {"names": {str(i): c for i, c in enumerate(classes)}}}
    return {"features": [{"name": "image", "dtype": "image"},
                         {"name": "label", "dtype": label}],
            "splits": [{"name": s, "num_examples": n} for s, n in scan.split_counts.items()]}


def _images(scan: FolderScan) -> dict[str, Any]:
    return {"count": scan.images, "unreadable": len(scan.unreadable),
            "other_files": len(scan.other_files), "bytes": scan.total_bytes,
            **scan.size_stats(), "modes": dict(scan.modes.most_common()),
            "formats": dict(scan.formats.most_common())}


def _duplicates(scan: FolderScan) -> dict[str, Any]:
    return {"groups": len(scan.duplicates),
            "files": sum(len(g) - 1 for g in scan.duplicates),
            "examples": scan.duplicates[:_EXAMPLES]}
