"""What the recorded runs tell: comparisons, "has this been tried?", and measured
organisational value (MoV).

- :mod:`.comparison`: runs side by side (params, metrics, histories, code, data, hardware);
- :mod:`.similarity`: the same or similar earlier runs, and the best prior run on some data;
- :mod:`.mov`: MoV definitions, measurements with provenance, progress against target.

Search is the query compiler's (:mod:`registry.query`). Every read and write here goes
through :mod:`registry.store`.
"""

import importlib

# Loaded on first use (PEP 562): start_run needs similarity only, not comparison or MoV.
_LAZY = {
    "Comparison": "comparison", "compare": "comparison",
    "MovProgress": "mov", "define_mov": "mov", "mov_progress": "mov", "record_mov": "mov",
    "Prior": "similarity", "RunSpec": "similarity", "best_prior": "similarity",
    "similar": "similarity",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Comparison",
    "MovProgress",
    "Prior",
    "RunSpec",
    "best_prior",
    "compare",
    "define_mov",
    "mov_progress",
    "record_mov",
    "similar",
]
