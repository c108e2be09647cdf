"""Seeded synthetic inspection images: small RGB pictures of a surface, with or without a
defect, one sub-folder per class (an image-folder dataset, ready for ``dvc add``).

Two tasks ship with the demo: ``surface`` (metal sheet: ok, scratch, dent, stain) and
``weld`` (seams: good, porosity, undercut). Each image is drawn from its own seed, so a data
set is the same on every machine and growing it never changes the images already there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["TASKS", "generate"]

Canvas = np.ndarray  # float32, (H, W, 3), values in [0, 1]
Painter = Callable[[Canvas, np.random.Generator], None]


def _sheet(size: int, rng: np.random.Generator) -> Canvas:
    """Brushed metal: a grey level with horizontal streaks and a lighting gradient."""
    base = rng.uniform(0.45, 0.65)
    streaks = rng.normal(0, 0.04, size=(size, 1)) + rng.normal(0, 0.015, size=(size, size))
    light = np.linspace(-0.08, 0.08, size)[None, :] * rng.choice([-1, 1])
    grey = np.clip(base + streaks + light, 0, 1)
    tint = np.array([1.0, 1.0, 1.02]) * rng.uniform(0.97, 1.03, size=3)
    return (grey[..., None] * tint).astype(np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _scratch(img: Canvas, rng: np.random.Generator) -> None:
    size = img.shape[0]
    yy, xx = _grid(size)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
    along = np.abs((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle))
    mask = (dist < rng.uniform(0.6, 1.4)) & (along < rng.uniform(0.2, 0.4) * size)
    img[mask] = np.clip(img[mask] + rng.choice([-1, 1]) * rng.uniform(0.1, 0.35), 0, 1)


def _dent(img: Canvas, rng: np.random.Generator) -> None:
    size = img.shape[0]
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.25, 0.75, size=2) * size
    r = rng.uniform(0.08, 0.16) * size
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2
    # Lit from above: a bright half and a dark half.
    shade = np.exp(-d2) * ((yy - cy) / r) * rng.uniform(0.12, 0.35)
    img += shade[..., None]
    np.clip(img, 0, 1, out=img)


def _stain(img: Canvas, rng: np.random.Generator) -> None:
    size = img.shape[0]
    yy, xx = _grid(size)
    colour = np.array([0.55, 0.35, 0.15]) * rng.uniform(0.8, 1.2, size=3)  # rust
    blob = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(3, 6)):
        cy, cx = rng.uniform(0.3, 0.7, size=2) * size
        r = rng.uniform(0.05, 0.12) * size
        blob = np.maximum(blob, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2))
    alpha = (blob * rng.uniform(0.2, 0.7))[..., None]
    img[:] = img * (1 - alpha) + colour * alpha


def _seam(img: Canvas, rng: np.random.Generator) -> np.ndarray:
    """A weld bead across the image; returns its centre row per column."""
    size = img.shape[0]
    yy, xx = _grid(size)
    wobble = 2 * np.sin(xx[0] / size * 2 * np.pi * rng.uniform(1, 2))
    centre = size / 2 + rng.uniform(-4, 4) + wobble
    width = rng.uniform(0.10, 0.14) * size
    bead = np.exp(-((yy - centre[None, :]) ** 2) / width**2)
    ripples = 0.06 * np.sin(xx / rng.uniform(1.5, 2.5))
    colour = np.array([0.75, 0.65, 0.5])
    alpha = bead[..., None] * 0.8
    img[:] = img * (1 - alpha) + (colour + ripples[..., None]) * alpha
    np.clip(img, 0, 1, out=img)
    return centre


def _good(img: Canvas, rng: np.random.Generator) -> None:
    _seam(img, rng)


def _porosity(img: Canvas, rng: np.random.Generator) -> None:
    size = img.shape[0]
    centre = _seam(img, rng)
    yy, xx = _grid(size)
    for _ in range(rng.integers(3, 8)):
        cx = rng.uniform(0.1, 0.9) * size
        cy = centre[int(cx)] + rng.uniform(-2, 2)
        r = rng.uniform(0.8, 2.0)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < r**2] *= rng.uniform(0.2, 0.6)


def _undercut(img: Canvas, rng: np.random.Generator) -> None:
    size = img.shape[0]
    centre = _seam(img, rng)
    yy, xx = _grid(size)
    side = rng.choice([-1, 1]) * rng.uniform(0.13, 0.17) * size
    groove = np.abs(yy - (centre[None, :] + side)) < 1.2
    start, stop = sorted(rng.uniform(0.1, 0.9, size=2) * size)
    groove &= (xx >= start) & (xx <= max(stop, start + size / 4))
    img[groove] *= rng.uniform(0.3, 0.7)


TASKS: dict[str, dict[str, Painter]] = {
    "surface": {"ok": lambda img, rng: None, "scratch": _scratch, "dent": _dent,
                "stain": _stain},
    "weld": {"good": _good, "porosity": _porosity, "undercut": _undercut},
}


def generate(out: str | Path, task: str = "surface", *, per_class: int = 80, size: int = 64,
             seed: int = 0) -> dict[str, int]:
    """Write ``per_class`` PNG images of each class of ``task`` under ``out/<class>/``;
    returns the number of images per class. The same arguments give the same images."""
    from PIL import Image

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    if per_class < 1 or size < 16:
        raise ValueError("per_class must be at least 1 and size at least 16")
    out = Path(out)
    for label, (name, paint) in enumerate(TASKS[task].items()):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            img = _sheet(size, rng)
            paint(img, rng)
            pixels = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"{name}_{i:04d}.png", optimize=False)
    return {name: per_class for name in TASKS[task]}
