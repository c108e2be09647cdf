"""Image folders for fine-tuning: one sub-folder of RGB images per class.

Framework-free (no torch, no TensorFlow), so the PyTorch and Keras fine-tunes share it:

    index = scan_image_folder("data/defects")       # classes sorted by folder name
    train, val = split(index, val_fraction=0.2, seed=0)

The split is stratified (each class keeps its share) and deterministic: a sample's side
depends only on the seed and its path relative to the root, never on listing order, so the
same folder gives the same split on every machine, and adding images moves no old image
across the line but the few that keep each class's count right.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import DataFolderError, FinetuneConfigError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderIndex", "Sample", "open_rgb", "prepare",
           "scan_image_folder", "split"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif",
                              ".tiff", ".ppm"})

Sample = tuple[Path, int]


@dataclass(frozen=True)
class ImageFolderIndex:
    """The images of a folder: ``classes`` (sorted sub-folder names) and ``samples``
    ((path, class index), sorted by path within each class)."""

    root: Path
    classes: list[str]
    samples: list[Sample]

    def counts(self) -> dict[str, int]:
        """Images per class."""
        counts = dict.fromkeys(self.classes, 0)
        for _, label in self.samples:
            counts[self.classes[label]] += 1
        return counts


def scan_image_folder(root: str | os.PathLike) -> ImageFolderIndex:
    """Index ``root``: every visible sub-folder is a class, every image below it (at any
    depth) a sample. Raises DataFolderError for a missing folder, fewer than two classes or
    a class without images."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataFolderError(str(base), "no such folder")
    classes = sorted(e.name for e in os.scandir(base) if e.is_dir() and not _hidden(e.name))
    if len(classes) < 2:
        raise DataFolderError(str(base), f"found {len(classes)} class folder(s), need at least 2")
    samples: list[Sample] = []
    for label, name in enumerate(classes):
        images = _images(base / name)
        if not images:
            raise DataFolderError(str(base), f"class folder {name!r} holds no images "
                                             f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        samples.extend((path, label) for path in images)
    return ImageFolderIndex(root=base, classes=classes, samples=samples)


def split(index: ImageFolderIndex, val_fraction: float,
          seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(train, val): ``round(n * val_fraction)`` images of each class go to val, at least
    one and never all of them. Deterministic in ``seed`` and the relative paths."""
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise FinetuneConfigError("val_fraction", val_fraction, "must be between 0 and 1")
    by_class: dict[int, list[Sample]] = {}
    for sample in index.samples:
        by_class.setdefault(sample[1], []).append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            raise DataFolderError(str(index.root), f"class {index.classes[label]!r} has one "
                                                   "image; a split needs at least 2 per class")
        ranked = sorted(members, key=lambda s: _rank(seed, index.root, s[0]))
        n_val = min(len(members) - 1, max(1, math.floor(len(members) * val_fraction + 0.5)))
        val.extend(sorted(ranked[:n_val]))
        train.extend(sorted(ranked[n_val:]))
    return train, val


def open_rgb(path: str | os.PathLike, source: Any = None) -> Any:
    """The image at ``path`` (read from ``source``, a file object, if given) as a PIL RGB
    image; DataFolderError naming ``path`` if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path if source is None else source) as image:
            return image.convert("RGB")
    except UnidentifiedImageError as exc:
        raise DataFolderError(str(path), "cannot read this image (not an image PIL "
                                         "recognises)") from exc
    except OSError as exc:
        raise DataFolderError(str(path), f"cannot read this image ({exc})") from exc


def _images(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        found.extend(Path(dirpath, f) for f in filenames
                     if not _hidden(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _rank(seed: int, root: Path, path: Path) -> bytes:
    relative = path.relative_to(root).as_posix()
    return hashlib.blake2b(f"{seed}\0{relative}".encode(), digest_size=16).digest()


def prepare(root: str | os.PathLike, num_classes: int | None, val_fraction: float,
            seed: int) -> tuple[list[str], list[Sample], list[Sample]]:
    """The classes and the train/val split of an image folder, checking ``num_classes``
    (None: as many as there are class folders) against the folder."""
    index = scan_image_folder(root)
    if num_classes is not None and num_classes != len(index.classes):
        raise FinetuneConfigError("num_classes", num_classes,
                                  f"{root} has {len(index.classes)} class folders")
    train, val = split(index, val_fraction, seed)
    return index.classes, train, val
