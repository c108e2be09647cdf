"""Cairn's experiment registry: every run recorded, findable, comparable.

    import registry
    with registry.start_run(project="defects", name="r18-baseline", params=cfg) as run:
        run.use_data("data/train", role="train")
        run.log_metric("loss", loss, step=step)

Importing this package loads only the standard library; the store (SQLAlchemy), DVC and
MLflow are imported when first used. The knowledge layer is reached from here too:
``registry.search(query)``, ``registry.compare(refs)``, ``registry.similar(run)``,
``registry.best_prior(data, metric)``, ``registry.mov_progress(project)``; groups of seeds:
``registry.groups(query)``, ``registry.compare_groups(a, b, metric)``.
"""

# Bind Python's SQLite now: a framework imported later (TensorFlow) that brings its own SQLite
# without FTS5 would otherwise replace it for the whole process (see store._engine).
import sqlite3  # noqa: F401

from registry import errors as errors
from registry._lazy import lazy_names
from registry.client import add_to_run as add_to_run
from registry.client import get_run as get_run
from registry.client import list_runs as list_runs
from registry.client import metric_history as metric_history
from registry.config import Workspace as Workspace
from registry.config import load_workspace as load_workspace
from registry.entities import RunRecord as RunRecord
from registry.entities import RunStatus as RunStatus
from registry.tracking import Run as Run
from registry.tracking import active_run as active_run
from registry.tracking import sample_node as sample_node
from registry.tracking import start_run as start_run

__version__ = "0.1.0"

# Loaded on first use (PEP 562), so `import registry` stays light.
_LAZY = {
    "search": "registry.query",
    "compare": "registry.knowledge",
    "compare_groups": "registry.knowledge",
    "groups": "registry.query.groups",
    "similar": "registry.knowledge",
    "best_prior": "registry.knowledge",
    "define_mov": "registry.knowledge",
    "record_mov": "registry.knowledge",
    "mov_progress": "registry.knowledge",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "Run",
    "RunRecord",
    "RunStatus",
    "Workspace",
    "active_run",
    "add_to_run",
    "best_prior",
    "compare",
    "compare_groups",
    "define_mov",
    "errors",
    "get_run",
    "groups",
    "list_runs",
    "load_workspace",
    "metric_history",
    "mov_progress",
    "record_mov",
    "sample_node",
    "search",
    "similar",
    "start_run",
]
