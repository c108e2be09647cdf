"""A card's weights: where they are, whether they are the documented bytes, what they hold.

Only safetensors files are accepted: their header is plain JSON (read here without torch) and
loading them cannot run code, unlike pickled checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from catalog._card import ModelCard
from catalog.errors import WeightsIntegrityError, WeightsMissingError

__all__ = [
    "HEAD_NAMES",
    "TensorHeader",
    "digests",
    "dvc_out",
    "lock_out",
    "read_header",
    "verified_weights",
    "weights_location",
]

_CHUNK = 1 << 20
LOCK_FILE = "dvc.lock"
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_MAX_HEADER = 100 << 20
# Classifier weights of timm's families, most common first (fc: ResNet; head.fc: ConvNeXt...).
HEAD_NAMES = ("fc.weight", "head.fc.weight", "head.weight", "classifier.weight",
              "last_linear.weight", "head.l.weight")


@dataclass(frozen=True)
class TensorHeader:
    """What a safetensors header says: tensor shapes by name, and the free-text metadata."""

    shapes: dict[str, list[int]]
    metadata: dict[str, str]

    @property
    def num_params(self) -> int:
        """Values of the parameters (normalisation statistics are buffers, not counted)."""
        total = 0
        for name, shape in self.shapes.items():
            if name.endswith(_BUFFERS):
                continue
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total

    def head_outputs(self) -> tuple[str, int] | None:
        """(tensor name, outputs) of the classifier, where a known head name is present."""
        for name in HEAD_NAMES:
            shape = self.shapes.get(name)
            if shape and len(shape) == 2:
                return name, shape[0]
        return None

    def class_names(self) -> list[str] | None:
        """Class names recorded in the metadata by ``zoo.export.save_safetensors``."""
        raw = self.metadata.get("class_names")
        try:
            names = json.loads(raw) if raw else None
        except ValueError:
            return None
        return [str(n) for n in names] if isinstance(names, list) else None


def read_header(path: Path, card: str = "?") -> TensorHeader:
    """Parse the header of a safetensors file (8-byte length, then JSON). A length beyond the
    file, or beyond 100 MiB, is refused before anything is read."""
    try:
        with open(path, "rb") as fh:
            header = _header_json(fh, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        raise WeightsIntegrityError(card, str(path), f"cannot read: {exc.strerror or exc}"
                                    ) from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise WeightsIntegrityError(card, str(path), f"not a safetensors file ({reason})"
                                    ) from exc
    if not isinstance(header, dict):
        raise WeightsIntegrityError(card, str(path), "not a safetensors file (header)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise WeightsIntegrityError(card, str(path), "not a safetensors file (__metadata__ is "
                                                     "not a mapping)")
    shapes = {}
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
                type(d) is int and d >= 0 for d in shape):
            raise WeightsIntegrityError(card, str(path), f"not a safetensors file (tensor "
                                                         f"{name[:80]!r} has no valid shape)")
        shapes[name] = shape
    return TensorHeader(shapes, {str(k): str(v) for k, v in metadata.items()})


def _header_json(fh: BinaryIO, size: int) -> Any:
    prefix = fh.read(8)
    if len(prefix) < 8:
        raise ValueError("file is shorter than a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(_MAX_HEADER, size - 8):
        raise ValueError(f"header claims {length} bytes, the file has {size - 8} after the "
                         f"length and the limit is {_MAX_HEADER}")
    return json.loads(fh.read(length).decode("utf-8"))


def digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file in one read; md5 is what DVC records."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def verified_weights(card: ModelCard) -> Path:
    """The card's weights file, after checking it is there, inside the card's folder, a
    safetensors file, and the bytes the card's sha256 names."""
    path = weights_location(card)
    if not path.is_file():
        raise WeightsMissingError(card.ref, str(path), _pull_hint(card))
    read_header(path, card.ref)
    actual, _ = digests(path)
    expected = str(card.weights.get("sha256", ""))
    if actual != expected:
        raise WeightsIntegrityError(card.ref, str(path),
                                    f"sha256 is {actual}, the card documents {expected or '-'}")
    return path


def weights_location(card: ModelCard) -> Path:
    """The weights path the card names, refused when it leaves the card's folder."""
    rel = card.weights.get("path")
    folder = card.folder
    if not isinstance(rel, str) or not rel or folder is None:
        raise WeightsMissingError(card.ref, "-", "the card names no weights.path")
    if "\x00" in rel:
        raise WeightsIntegrityError(card.ref, repr(rel), "weights.path cannot contain NUL")
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()) or Path(rel).is_absolute():
        raise WeightsIntegrityError(card.ref, rel, "weights.path must be a relative path "
                                                   "inside the card's folder")
    if path.suffix != ".safetensors":
        raise WeightsIntegrityError(card.ref, rel, "only .safetensors weights are loaded")
    return path


def _pull_hint(card: ModelCard) -> str:
    dvc = card.weights.get("dvc")
    if isinstance(dvc, str) and card.folder and (card.folder / dvc).is_file():
        if Path(dvc).name == LOCK_FILE:  # a stage output: pull it by its own path
            return f"they are a DVC stage output: run `dvc pull {weights_location(card)}`"
        return f"they are tracked by DVC: run `dvc pull {card.folder / dvc}`"
    return "put the file there, or fix weights.path"


def dvc_out(dvc_file: Path) -> dict[str, Any]:
    """The single output a ``.dvc`` file tracks (path, md5, size)."""
    import yaml

    data = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise ValueError("expected one entry under 'outs'")
    return outs[0]


def lock_out(lock_file: Path, target: Path) -> dict[str, Any] | None:
    """The output entry of a ``dvc.lock`` that tracks ``target``: the file itself, or a
    folder above it (then ``md5`` is the file's own, read from the folder's manifest in the
    DVC cache, or None when the cache does not hold it). None when no stage records it."""
    import yaml

    data = yaml.safe_load(lock_file.read_text(encoding="utf-8"))
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise ValueError("expected a 'stages' table")
    target = target.resolve()
    for stage, entry in stages.items():
        for out in (entry or {}).get("outs") or []:
            path = (lock_file.parent / str(out.get("path", ""))).resolve()
            if path == target:
                return {**out, "stage": stage}
            if target.is_relative_to(path):
                member = target.relative_to(path).as_posix()
                md5 = _manifest_md5(lock_file.parent, str(out.get("md5", "")), member)
                return {**out, "stage": stage, "md5": md5}
    return None


def _manifest_md5(root: Path, dir_md5: str, member: str) -> str | None:
    """A file's md5 in a folder manifest (``<hash>.dir``) of the DVC cache at ``root``."""
    repo = next((p for p in (root, *root.parents) if (p / ".dvc").is_dir()), None)
    if repo is None or not dir_md5.endswith(".dir"):
        return None
    manifest = repo / ".dvc" / "cache" / "files" / "md5" / dir_md5[:2] / dir_md5[2:]
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return next((e.get("md5") for e in entries if e.get("relpath") == member), None)
