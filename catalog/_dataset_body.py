"""The Markdown body of a drafted dataset card, and the known issues found in its folder.

Folder and file names come from whoever made the dataset: every one is written escaped
(:func:`inert`), so a class called ``<img onerror=...>`` or ``*bold*`` shows as itself.
"""

from __future__ import annotations

from typing import Any

from catalog._dataset_scan import NO_SPLIT, SPLIT_NAMES, UNLABELLED, FolderScan
from catalog._schema import PLACEHOLDER

__all__ = ["body_of", "inert", "known_issues"]

_SHOWN = 10  # paths listed per issue
_IMBALANCE = 10  # largest class / smallest class above this is an issue
_MD_SPECIAL = "\\`*_[]|#"


def inert(text: Any) -> str:
    """``text`` as Markdown that renders as itself: HTML characters as entities, Markdown's
    own characters backslash-escaped, line breaks as spaces."""
    out = " ".join(str(text).split())
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in out)


def known_issues(scan: FolderScan) -> list[str]:
    """What a person reusing the data should know, found in the folder (plain text)."""
    issues = [*_file_issues(scan), *_class_issues(scan)]
    non_rgb = {m: n for m, n in scan.modes.items() if m != "RGB"}
    if non_rgb:
        modes = ", ".join(f"{m}: {n}" for m, n in sorted(non_rgb.items()))
        issues.append(f"{sum(non_rgb.values())} image(s) are not RGB ({modes}): convert them "
                      "to RGB when loading")
    return issues + _duplicate_issues(scan)


def _file_issues(scan: FolderScan) -> list[str]:
    issues = []
    if scan.unreadable:
        shown = "; ".join(f"{p} ({why})" for p, why in scan.unreadable[:_SHOWN])
        issues.append(f"{len(scan.unreadable)} unreadable image(s), not counted: "
                      f"{shown}{_more(scan.unreadable)}")
    if scan.other_files:
        issues.append(f"{len(scan.other_files)} file(s) that are not images, not counted: "
                      f"{', '.join(scan.other_files[:_SHOWN])}{_more(scan.other_files)}")
    odd = [s for s in scan.splits if s.lower() not in SPLIT_NAMES]
    if scan.by_split and odd:
        issues.append(f"top-level folder(s) {', '.join(odd)} counted as splits")
    if not scan.by_split:
        issues.append(f"no split folders (train/, val/, test/): every image is in the "
                      f"{NO_SPLIT} split; evaluation data must come from elsewhere")
    return issues


def _class_issues(scan: FolderScan) -> list[str]:
    issues = [f"class folder {path} holds no images" for path in scan.empty]
    if any(not sum(counts.values()) for counts in scan.classes.values()):
        issues.append("a class without images breaks loaders (torchvision's ImageFolder "
                      "refuses it) and DVC does not keep empty folders: fill or remove it")
    loose = scan.classes.get(UNLABELLED, {})
    for split, n in loose.items():
        where = f"{split}/" if scan.by_split else "the dataset's folder"
        issues.append(f"{n} image(s) lie directly in {where}, in no class folder")
    classes = {c: n for c, n in scan.classes.items() if c != UNLABELLED}
    if len(scan.splits) > 1:
        for cls, counts in classes.items():
            missing = [s for s in scan.splits if not counts.get(s)]
            if missing and any(counts.values()):
                issues.append(f"class {cls} has no images in {', '.join(missing)}")
    totals = {c: sum(n.values()) for c, n in classes.items() if sum(n.values())}
    if len(totals) > 1:
        big, small = max(totals, key=totals.get), min(totals, key=totals.get)
        if totals[big] > _IMBALANCE * totals[small]:
            issues.append(f"classes are imbalanced: {big} has {totals[big]} images, "
                          f"{small} {totals[small]}")
    return issues


def _duplicate_issues(scan: FolderScan) -> list[str]:
    if not scan.duplicates:
        return []
    extra = sum(len(g) - 1 for g in scan.duplicates)
    issues = [f"{len(scan.duplicates)} group(s) of identical images ({extra} redundant "
              f"file(s)), e.g. {' = '.join(scan.duplicates[0])}"]
    across = [g for g in scan.duplicates if len({_split_of(p, scan) for p in g}) > 1]
    if across:
        issues.append(f"{len(across)} group(s) of identical images span splits (evaluation "
                      f"sees training images), e.g. {' = '.join(across[0])}")
    labels = [g for g in scan.duplicates if len({_class_of(p, scan) for p in g}) > 1]
    if labels:
        issues.append(f"{len(labels)} group(s) of identical images carry different classes, "
                      f"e.g. {' = '.join(labels[0])}")
    return issues


def _split_of(path: str, scan: FolderScan) -> str:
    return path.split("/", 1)[0] if scan.by_split else NO_SPLIT


def _class_of(path: str, scan: FolderScan) -> str:
    parts = path.split("/")[1 if scan.by_split else 0:]
    return parts[0] if len(parts) > 1 else UNLABELLED


def _more(items: list[Any]) -> str:
    return f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""


def body_of(front: dict[str, Any], scan: FolderScan, issues: list[str]) -> str:
    """The body: description, structure with the split table, creation, considerations and
    known issues; ``TODO(cairn)`` where only a person can write."""
    parts = [f"\n# {inert(front['pretty_name'])}\n", _description(front, scan),
             _structure(scan), _creation(front), _considerations(), _issues(issues)]
    return "\n".join(parts)


def _description(front: dict[str, Any], scan: FolderScan) -> str:
    dvc = front["dvc"]
    classes = scan.labels
    splits = ", ".join(f"{inert(s)} ({n})" for s, n in scan.split_counts.items())
    lines = ["## Dataset Description\n",
             f"{PLACEHOLDER}: what the images show, where they come from and what the "
             "dataset is for.\n",
             f"- DVC: {inert(dvc['path'])}, md5 {inert(dvc['md5'])}"
             + (f", tracked by {inert(dvc['source'])}" if dvc.get("source") else ""),
             f"- remote: {inert(dvc.get('remote') or 'none configured')}",
             f"- {scan.images} images in {len(classes)} classes; splits: {splits}; "
             f"{scan.total_bytes} bytes of images",
             f"- drafted by {inert(front.get('owner') or '-')} on {front.get('created')}"]
    return "\n".join(lines) + "\n"


def _structure(scan: FolderScan) -> str:
    layout = "split/class/image" if scan.by_split else "class/image"
    lines = ["## Dataset Structure\n",
             f"Image folders, `{layout}` (Hugging Face's imagefolder layout): the class of an "
             "image is the name of its folder.\n", "### Data Splits\n",
             "| class | " + " | ".join(inert(s) for s in scan.splits) + " | total |",
             "|---" * (len(scan.splits) + 2) + "|"]
    for cls, counts in scan.classes.items():
        row = [counts.get(s, 0) for s in scan.splits]
        lines.append(f"| {inert(cls)} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = list(scan.split_counts.values())
    lines.append("| total | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join([*lines, "", *_image_tables(scan)]) + "\n"


def _image_tables(scan: FolderScan) -> list[str]:
    lines = ["### Images\n"]
    stats = scan.size_stats()
    if stats:
        lines += ["| pixels | min | median | max |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['min']} | {v['median']} | {v['max']} |" for k, v in stats.items()]
        lines.append("")
    for title, counter in (("mode", scan.modes), ("format", scan.formats)):
        if counter:
            lines += [f"| {title} | images |", "|---|---|"]
            lines += [f"| {inert(k)} | {n} |" for k, n in counter.most_common()]
            lines.append("")
    if not scan.images:
        lines.append("No readable image.\n")
    return lines


def _creation(front: dict[str, Any]) -> str:
    fmt = front["annotation"]["format"]
    return "\n".join([
        "## Dataset Creation\n", "### Collection\n",
        f"{PLACEHOLDER}: who collected the images, how (camera, line, sampling), when and "
        "where.\n", "### Annotation\n",
        f"{PLACEHOLDER}: who labelled the images, with which tool and guidelines, and how "
        f"disagreements were settled. Export format: {inert(fmt)}.\n"])


def _considerations() -> str:
    return ("## Considerations for Using the Data\n\n"
            f"{PLACEHOLDER}: biases, conditions the images do not cover, uses the data must "
            "not be put to, personal data it may hold.\n")


def _issues(issues: list[str]) -> str:
    lines = ["## Known issues\n", "Found when the card was drafted:\n"]
    lines += [f"- {inert(issue)}" for issue in issues] or ["- none found"]
    lines += ["", f"{PLACEHOLDER}: issues a person knows of (label noise, ambiguous classes, "
                  "images to drop).\n"]
    return "\n".join(lines)
