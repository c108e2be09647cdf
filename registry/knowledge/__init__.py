"""What the recorded runs tell: comparisons, "has this been tried?", and measured
organisational value (MoV).

- :mod:`.comparison`: runs side by side (params, metrics, histories, code, data, hardware);
- :mod:`.similarity`: the same or similar earlier runs, and the best prior run on some data;
- :mod:`.groups`: groups of runs that differ only in their seeds, compared beyond seed noise;
- :mod:`.mov`: MoV definitions, measurements with provenance, progress against target.

Search is the query compiler's (:mod:`registry.query`). Every read and write here goes
through :mod:`registry.store`.
"""

from registry._lazy import lazy_names

# Loaded on first use (PEP 562): start_run needs similarity only, not comparison or MoV.
_LAZY = {
    **dict.fromkeys(("Comparison", "compare"), "registry.knowledge.comparison"),
    **dict.fromkeys(("MovProgress", "define_mov", "mov_progress", "record_mov"),
                    "registry.knowledge.mov"),
    **dict.fromkeys(("Prior", "RunSpec", "best_prior", "similar"),
                    "registry.knowledge.similarity"),
    **dict.fromkeys(("GroupComparison", "compare_groups"), "registry.knowledge.groups"),
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "Comparison",
    "GroupComparison",
    "MovProgress",
    "Prior",
    "RunSpec",
    "best_prior",
    "compare",
    "compare_groups",
    "define_mov",
    "mov_progress",
    "record_mov",
    "similar",
]
