"""Reading the registry from a script or notebook: the workspace's store, as plain records."""

from __future__ import annotations

from collections.abc import Sequence

from registry.config import Workspace, load_workspace
from registry.entities import MetricPoint, RunRecord

__all__ = ["get_run", "list_runs", "metric_history"]


def _store(workspace: Workspace | None):
    return (workspace or load_workspace()).open_store()


def get_run(ref: str, *, workspace: Workspace | None = None) -> RunRecord:
    """Everything recorded about a run, given its id, a unique id prefix or a unique name."""
    return _store(workspace).get_run(ref)


def list_runs(project: str | None = None, *, owner: str | None = None, status: str | None = None,
              limit: int = 50, offset: int = 0,
              workspace: Workspace | None = None) -> list[RunRecord]:
    """Runs newest first, with metric summaries (params and the rest: use :func:`get_run`)."""
    return _store(workspace).list_runs(project_name=project, owner=owner, status=status,
                                       limit=limit, offset=offset)


def metric_history(ref: str, keys: Sequence[str] | None = None, *,
                   workspace: Workspace | None = None) -> dict[str, list[MetricPoint]]:
    """Every logged point of a run's metrics, by key, in step order."""
    return _store(workspace).metric_history(ref, keys)
