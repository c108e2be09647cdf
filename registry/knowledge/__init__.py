"""What the recorded runs tell: comparisons, "has this been tried?", and measured
organisational value (MoV).

- :mod:`.comparison`: runs side by side (params, metrics, histories, code, data, hardware);
- :mod:`.similarity`: the same or similar earlier runs, and the best prior run on some data;
- :mod:`.mov`: MoV definitions, measurements with provenance, progress against target.

Search is the query compiler's (:mod:`registry.query`). Every read and write here goes
through :mod:`registry.store`.
"""

from registry.knowledge.comparison import Comparison as Comparison
from registry.knowledge.comparison import compare as compare
from registry.knowledge.mov import MovProgress as MovProgress
from registry.knowledge.mov import define_mov as define_mov
from registry.knowledge.mov import mov_progress as mov_progress
from registry.knowledge.mov import record_mov as record_mov
from registry.knowledge.similarity import Prior as Prior
from registry.knowledge.similarity import RunSpec as RunSpec
from registry.knowledge.similarity import best_prior as best_prior
from registry.knowledge.similarity import similar as similar

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
