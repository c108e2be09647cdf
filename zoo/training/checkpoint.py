"""Resume checkpoints: everything a fine-tune needs to continue where it stopped.

``last.pt`` (written atomically by rank 0 after every epoch) holds the model, optimizer and
EMA state, the epoch, optimizer step, best metric, history and early-stopping count, and what
the fine-tune was (model name, classes, strategy) so a checkpoint is never resumed into a
different one. It is read with ``torch.load(weights_only=True)``: tensors and plain values
only, no pickled code. The published weights are safetensors (:mod:`zoo.export`).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ResumeError

__all__ = ["IDENTITY_KEYS", "load_state", "save_state"]

FORMAT = 1
IDENTITY_KEYS = ("model", "classes", "strategy", "train_stages")


def save_state(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` (via a temporary file, so a crash never leaves half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, **state}, partial)
    os.replace(partial, path)
    return path


def load_state(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path``, checked against this fine-tune's ``identity``."""
    if not path.is_file():
        raise ResumeError(str(path), "no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ResumeError(str(path), f"not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeError(str(path), "not a zoo fine-tune checkpoint")
    for key in IDENTITY_KEYS:
        if state.get(key) != identity.get(key):
            raise ResumeError(str(path), f"it is for {key}={state.get(key)!r}, this "
                                             f"fine-tune has {key}={identity.get(key)!r}")
    return state
