"""Where the team puts pretrained weights files: one convention for every source.

``<weights root>/<source>/<name>.safetensors``: the root is ``$CAIRN_WEIGHTS_DIR``, else the
workspace's ``[zoo] weights_dir``, else ``<workspace>/.cairn/weights`` (never committed).
``<name>`` is the full model name with its pretrained tag, e.g.
``timm/resnet50.a1_in1k.safetensors``. ``cairn zoo pull`` fills it on a machine with network;
copying the folder to an offline machine makes the same models load there.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo._online import WEIGHTS_ENV, hub_settings

__all__ = ["SUFFIX", "WEIGHTS_ENV", "expected_path", "present", "weights_dir"]

SUFFIX = ".safetensors"


def weights_dir(source: str, root: Path | None = None) -> Path:
    """The folder of ``source``'s weights files under ``root`` (default: the team's)."""
    return (root if root is not None else hub_settings().weights_root) / source


def expected_path(source: str, name: str) -> Path:
    """Where the weights file of model ``name`` of ``source`` is, or must be put."""
    return weights_dir(source) / f"{name}{SUFFIX}"


def present(folder: Path) -> frozenset[str]:
    """Names of the models whose weights file is in ``folder`` (one listing)."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return frozenset()
    with entries:
        return frozenset(e.name[: -len(SUFFIX)] for e in entries
                         if e.name.endswith(SUFFIX) and e.is_file())
