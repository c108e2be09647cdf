"""Where the team puts pretrained weights files: one convention for every source.

``$CAIRN_WEIGHTS_DIR/<source>/<name>.safetensors``, or, without that variable,
``<workspace>/.cairn/weights/<source>/<name>.safetensors`` (the workspace's state folder, never
committed). ``<name>`` is the full model name with its pretrained tag, e.g.
``timm/resnet50.a1_in1k.safetensors``. Nothing is ever downloaded: on a machine with network,
fetch the file (or fill the Hugging Face cache) and copy it here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["WEIGHTS_ENV", "expected_path", "present", "weights_dir"]

WEIGHTS_ENV = "CAIRN_WEIGHTS_DIR"
SUFFIX = ".safetensors"


def weights_dir(source: str) -> Path:
    """The folder of ``source``'s weights files under the convention above."""
    root = os.environ.get(WEIGHTS_ENV)
    if root:
        return Path(root).expanduser().resolve() / source
    from registry.config import load_workspace

    return load_workspace().state_dir / "weights" / source


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
