"""The dataset card schema: Hugging Face's dataset card metadata plus Cairn's fields
(``kind: dataset``, the DVC version it documents, classes and image statistics).

Hugging Face's fields are those of its dataset card template; Cairn's sit at the top level,
as on model cards. Checks against the outside world (the DVC file now) live in
:mod:`catalog._dataset_checks`.
"""

from __future__ import annotations

import re

from catalog._card import ModelCard
from catalog._dataset_scan import size_category
from catalog._schema import (
    CAIRN_FIELDS,
    NUMBER,
    TEXT,
    TEXT_OR_TEXTS,
    TEXTS,
    CardProblem,
    Spec,
    card_kind,
    check_body,
    check_fields,
)

__all__ = ["DATASET_FIELDS", "DATASET_SECTIONS", "DVC_HASH", "SIZE_CATEGORIES",
           "check_dataset_card", "dataset_facts", "dataset_hash", "dataset_labels"]

DATASET_SECTIONS = ("Dataset Description", "Dataset Structure", "Dataset Creation",
                    "Known issues")
# DVC's md5: of a file, or of a folder's manifest (``.dir``).
DVC_HASH = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
                   "100M<n<1B", "n>1B")
_COUNT = Spec("int", check=lambda v: None if v >= 0 else f"must not be negative, not {v}")
_COUNTS = Spec("map", doc="a count per name (split, mode, format)")
_STATS = Spec("map", fields={k: NUMBER for k in ("min", "median", "max")})


def _hash(v: object) -> str | None:
    return None if DVC_HASH.match(str(v)) else (
        f"a DVC md5 (32 lower-case hex digits, '.dir' for a folder), not {str(v)[:80]!r}")


def _unique_names(v: list[object]) -> str | None:
    names = [c.get("name") for c in v if isinstance(c, dict)]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    return f"names a class twice: {', '.join(dupes)}" if dupes else None


HF_DATASET_FIELDS: dict[str, Spec] = {
    "license": TEXT_OR_TEXTS, "license_name": TEXT, "license_link": TEXT,
    "language": TEXT_OR_TEXTS, "pretty_name": TEXT, "tags": TEXTS,
    "task_categories": TEXTS, "task_ids": TEXTS,
    "size_categories": Spec("list", item=Spec(choices=SIZE_CATEGORIES)),
    "annotations_creators": TEXTS, "language_creators": TEXTS, "multilinguality": TEXTS,
    "source_datasets": TEXTS, "paperswithcode_id": TEXT, "configs": Spec("any"),
    "dataset_info": Spec("any"), "viewer": Spec("bool"), "thumbnail": TEXT,
}

CAIRN_DATASET_FIELDS: dict[str, Spec] = {
    "kind": Spec(required=True, choices=("dataset",)),
    **{k: CAIRN_FIELDS[k] for k in ("name", "version", "status", "project", "owner",
                                     "created")},
    "dvc": Spec("map", required=True, doc="the DVC version the card documents", fields={
        "path": Spec(required=True), "md5": Spec(required=True, check=_hash),
        "source": TEXT, "remote": TEXT, "size": _COUNT, "nfiles": _COUNT}),
    "classes": Spec("list", check=_unique_names, item=Spec("map", fields={
        "name": Spec(required=True), "images": _COUNTS})),
    "images": Spec("map", fields={
        "count": _COUNT, "unreadable": _COUNT, "other_files": _COUNT, "bytes": _COUNT,
        "width": _STATS, "height": _STATS, "modes": _COUNTS, "formats": _COUNTS}),
    "duplicates": Spec("map", fields={
        "groups": _COUNT, "files": _COUNT, "examples": Spec("list", item=TEXTS)}),
    "annotation": Spec("map", fields={"tool": TEXT, "format": TEXT, "guidelines": TEXT}),
    "collection": Spec("map", fields={"who": TEXT, "how": TEXT, "when": TEXT,
                                      "where": TEXT}),
    "known_issues": TEXTS, "intended_use": TEXT, "limitations": TEXT,
}

DATASET_FIELDS: dict[str, Spec] = {**HF_DATASET_FIELDS, **CAIRN_DATASET_FIELDS}


def dataset_hash(card: ModelCard) -> str | None:
    """The DVC md5 a dataset card documents (``dvc.md5``); None for other cards."""
    dvc = card.front_matter.get("dvc")
    md5 = dvc.get("md5") if isinstance(dvc, dict) else None
    return md5 if card_kind(card) == "dataset" and isinstance(md5, str) and md5 else None


def dataset_labels(card: ModelCard) -> list[str]:
    """The class names a dataset card lists; [] for other cards."""
    classes = card.front_matter.get("classes")
    if card_kind(card) != "dataset" or not isinstance(classes, list):
        return []
    return [str(c["name"]) for c in classes if isinstance(c, dict) and c.get("name")]


def dataset_facts(card: ModelCard) -> str:
    """One line on a dataset card's data: images, classes and where DVC has it."""
    images = card.front_matter.get("images")
    count = images.get("count") if isinstance(images, dict) else None
    labels = dataset_labels(card)
    dvc = card.front_matter.get("dvc")
    path = dvc.get("path") if isinstance(dvc, dict) else None
    return "; ".join(part for part in (
        f"{count} images" if isinstance(count, int) else "",
        f"{len(labels)} classes: {', '.join(labels[:8])}" + (" ..." if len(labels) > 8 else "")
        if labels else "", f"DVC {path}" if path else "") if part)


def check_dataset_card(card: ModelCard) -> list[CardProblem]:
    """Every problem of a dataset card against the dataset schema, in file order."""
    problems = (check_fields(card, DATASET_FIELDS) + _size_check(card)
                + check_body(card, DATASET_SECTIONS))
    return sorted(problems, key=lambda p: (p.line or 0, p.field or ""))


def _size_check(card: ModelCard) -> list[CardProblem]:
    """``size_categories`` should be the bucket of ``images.count`` (a warning: a person may
    count examples otherwise)."""
    images = card.front_matter.get("images")
    sizes = card.front_matter.get("size_categories")
    count = images.get("count") if isinstance(images, dict) else None
    if not isinstance(count, int) or not isinstance(sizes, list) or not sizes:
        return []
    expected = size_category(count)
    if expected in sizes:
        return []
    return [CardProblem(card.location(), card.line_of("size_categories"), "size_categories",
                        f"is {', '.join(map(str, sizes))} but images.count is {count} "
                        f"({expected})", "warning")]
