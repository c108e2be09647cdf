"""Reading the registry from a script or notebook: the workspace's store, as plain records."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from registry.config import Workspace, load_workspace
from registry.entities import MetricPoint, RunRecord, RunStatus
from registry.errors import MetricError, RunStateError, TagError

__all__ = ["add_to_run", "get_run", "list_runs", "metric_history"]

_MAX_KEY = 250


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


def add_to_run(ref: str, *, metrics: Mapping[str, float] | None = None,
               tags: Mapping[str, str] | None = None, note: str | None = None,
               workspace: Workspace | None = None) -> RunRecord:
    """Record measurements made after a run ended (an inference profile, a later
    evaluation): each metric as the next step of its history, tags set, ``note`` added to
    the notes. The run's status and params do not change. RunStateError while it runs (log
    through its :class:`~registry.Run` then)."""
    values = {_metric_key(k): _metric_value(k, v) for k, v in (metrics or {}).items()}
    labels = {_tag_key(k): _tag_value(k, v) for k, v in (tags or {}).items()}
    store = _store(workspace)
    record = store.get_run(ref)
    if record.status == RunStatus.RUNNING:
        raise RunStateError(record.id, record.status, "add to a running run from outside it")
    pk = store.resolve(record.id)
    if values:
        store.append_metrics(pk, values, time.time())
    if labels:
        store.set_tags(pk, labels)
    if note:
        store.append_notes(pk, note)
    return store.get_run(pk)


def _metric_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY or not key.isprintable():
        raise MetricError(key, None, f"names must be printable text of 1 to {_MAX_KEY} "
                                     "characters")
    return key


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise MetricError(key, value, "value must be a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise MetricError(key, value, f"value must be a number ({exc})") from None
    if math.isnan(number):
        raise MetricError(key, value, "a measurement added later must be a number, not NaN")
    return number


def _tag_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > _MAX_KEY:
        raise TagError(str(key)[:80], "", f"keys are 1 to {_MAX_KEY} characters")
    return key


def _tag_value(key: str, value: object) -> str:
    text = str(value)
    if len(text) > 1000:
        raise TagError(key, text[:80] + "...", "values are at most 1,000 characters")
    return text
