"""What an image folder holds: splits, classes and their image counts, image sizes, modes and
formats (read from each file's header by Pillow, nothing decoded), identical files and files
that cannot be read.

Layout: ``[split/]class/.../image``. The top-level folders are splits when one of them has a
split's name (train, val, test...); otherwise the whole folder is the one split ``train``, as
Hugging Face's imagefolder loader has it.
Hidden files and folders (``.name``) are skipped, as DVC's own tooling leaves them there.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NO_SPLIT", "SPLIT_NAMES", "UNLABELLED", "FolderScan", "scan_folder",
           "size_category"]

SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "dev", "test",
                         "testing", "eval", "evaluation", "holdout"})
NO_SPLIT = "train"  # the split of a folder without split folders
UNLABELLED = "(no class folder)"  # images lying directly in a split's folder
_CHUNK = 1 << 20
# Hugging Face's size_categories buckets, by number of examples.
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
          (1_000_000_000, "100M<n<1B"))


@dataclass
class FolderScan:
    """The facts of one scanned folder; paths are relative to it, with '/'."""

    splits: list[str]
    by_split: bool  # the top-level folders are splits
    classes: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> split -> n
    empty: list[str] = field(default_factory=list)  # class folders without images
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    modes: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    other_files: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of identical images
    total_bytes: int = 0

    @property
    def labels(self) -> list[str]:
        """The class folders' names, in order (not the images in no class folder)."""
        return [c for c in self.classes if c != UNLABELLED]

    @property
    def images(self) -> int:
        return len(self.widths)

    @property
    def split_counts(self) -> dict[str, int]:
        return {s: sum(c.get(s, 0) for c in self.classes.values()) for s in self.splits}

    def size_stats(self) -> dict[str, dict[str, float]]:
        """min, median and max of the widths and heights."""
        return {name: {"min": min(v), "median": _round(statistics.median(v)), "max": max(v)}
                for name, v in (("width", self.widths), ("height", self.heights)) if v}


def scan_folder(root: Path) -> FolderScan:
    """Every image under ``root`` read and counted by split and class."""
    root = Path(root)
    splits = _split_folders(root)
    scan = FolderScan(splits=list(splits), by_split=splits.get(NO_SPLIT) != root)
    hashes: dict[str, list[str]] = defaultdict(list)
    extensions = _image_extensions()
    for split, folder in splits.items():
        for cls_folder in _children(folder, dirs=True):
            scan.classes.setdefault(cls_folder.name, {})
            _scan_class(root, cls_folder, split, cls_folder.name, scan, hashes, extensions)
        loose = _children(folder, dirs=False)
        if loose:
            _scan_files(root, loose, split, UNLABELLED, scan, hashes, extensions)
    scan.classes = {c: scan.classes[c] for c in sorted(scan.classes)}
    scan.duplicates = sorted(sorted(g) for g in hashes.values() if len(g) > 1)
    return scan


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` bucket of ``n`` examples."""
    return next((name for bound, name in _SIZES if n < bound), "n>1B")


def _split_folders(root: Path) -> dict[str, Path]:
    """{split: folder}: the top-level folders when one has a split's name, else root."""
    top = _children(root, dirs=True)
    if any(p.name.lower() in SPLIT_NAMES for p in top):
        return {p.name: p for p in top}
    return {NO_SPLIT: root}


def _children(folder: Path, *, dirs: bool) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False) == dirs]


def _scan_class(root: Path, folder: Path, split: str, cls: str, scan: FolderScan,
                hashes: dict[str, list[str]], extensions: frozenset[str]) -> None:
    files: list[Path] = []
    for here, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        files += [Path(here, n) for n in sorted(names) if not n.startswith(".")]
    before = scan.images
    _scan_files(root, files, split, cls, scan, hashes, extensions)
    if scan.images == before:
        scan.empty.append(_rel(folder, root))


def _scan_files(root: Path, files: list[Path], split: str, cls: str, scan: FolderScan,
                hashes: dict[str, list[str]], extensions: frozenset[str]) -> None:
    for path in files:
        rel = _rel(path, root)
        if path.suffix.lower() not in extensions:
            scan.other_files.append(rel)
            continue
        try:
            digest, size = _sha256(path)
            width, height, mode, fmt = _header(path)
        except Exception as exc:  # Pillow raises many kinds for a broken file
            scan.unreadable.append((rel, _reason(exc).replace(str(path), rel)))
            continue
        scan.total_bytes += size
        hashes[digest].append(rel)
        scan.widths.append(width)
        scan.heights.append(height)
        scan.modes[mode] += 1
        scan.formats[fmt] += 1
        counts = scan.classes.setdefault(cls, {})
        counts[split] = counts.get(split, 0) + 1


def _header(path: Path) -> tuple[int, int, str, str]:
    """Width, height, mode and format from the header; ``verify`` walks the file's structure
    (chunks and checksums for PNG) without decoding pixels, so truncated files are caught."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            found = (*image.size, image.mode, image.format or "unknown")
            image.verify()
    return found


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fobj:
        while chunk := fobj.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _image_extensions() -> frozenset[str]:
    from PIL import Image

    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)  # not the save-only ones (.pdf)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _round(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 1)
