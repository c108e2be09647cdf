"""Import timm where torchvision's compiled operators cannot load.

Why this exists: every torchvision wheel our package index offers is a CUDA build. Next to the
CPU build of torch its ``_C`` extension fails to load (``libc10_cuda.so`` is missing);
torchvision swallows that, then registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` at import time, which raises ``RuntimeError: operator torchvision::nms
does not exist``, so ``import timm`` fails. Declaring those two schemas (no kernels) lets the
import through; the compiled operators (``torchvision.ops.nms``, ``torchvision.io.decode_jpeg``)
stay unavailable and say so with torchvision's own error (decode images with PIL). Where the
extension loads (a machine with a matching torchvision, e.g. a GPU machine) nothing is touched.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["import_timm", "patch_torchvision"]

# The operators torchvision registers fake kernels for at import time (torchvision 0.2x).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: Any = None  # the torch.library.Library that keeps the declared schemas alive


def import_timm() -> ModuleType:
    """``import timm``, after :func:`patch_torchvision`. Use it wherever timm is imported."""
    patch_torchvision()
    import timm

    return timm


def patch_torchvision() -> bool:
    """Declare torchvision's missing operator schemas if its extension cannot load.

    Returns True when it declared them; False when torchvision is absent, already imported,
    or its extension loads (then torchvision needs no help).
    """
    global _library
    if _library is not None or "torchvision" in sys.modules:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    import torch

    if _extension_loads(Path(spec.origin).parent, torch):
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for name, schema in _SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            _library.define(schema)
    return True


def _extension_loads(folder: Path, torch: Any) -> bool:
    """Load torchvision's ``_C`` the way torchvision does; False if it cannot be loaded."""
    loader = (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    found = importlib.machinery.FileFinder(str(folder), loader).find_spec("_C")
    if found is None or found.origin is None:
        return False
    try:
        torch.ops.load_library(found.origin)
    except (ImportError, OSError):
        return False
    return True
