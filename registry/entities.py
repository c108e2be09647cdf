"""Plain records returned by the registry. Database rows never leave the store; these do."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ArtifactRecord",
    "DatasetUse",
    "MetricPoint",
    "MetricSummary",
    "RunRecord",
    "RunStatus",
    "decode_value",
    "encode_value",
]


class RunStatus:
    """Run states. ``CRASHED`` is derived: RUNNING with a heartbeat that stopped."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CRASHED = "CRASHED"
    ENDED = (FINISHED, FAILED, KILLED)

    # A run is presumed dead after missing this many heartbeats.
    MISSED_BEATS = 3


def encode_value(value: float) -> tuple[float | None, str | None]:
    """Split a float into (finite value or None, 'nan'/'inf'/'-inf' or None) for storage."""
    if math.isfinite(value):
        return value, None
    if math.isnan(value):
        return None, "nan"
    return None, "inf" if value > 0 else "-inf"


def decode_value(value: float | None, nonfinite: str | None) -> float | None:
    """Inverse of :func:`encode_value`."""
    return float(nonfinite) if nonfinite else value


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    time: float


@dataclass(frozen=True)
class MetricSummary:
    """Per-run summary of one metric; ``min``/``max`` ignore non-finite values."""

    key: str
    last: float | None
    last_step: int
    last_time: float
    min: float | None
    max: float | None
    count: int
    nonfinite_count: int = 0


@dataclass(frozen=True)
class DatasetUse:
    """A dataset version a run used, as DVC recorded it, and whether the copy matched."""

    path: str
    role: str
    tracked: bool
    hash: str | None = None
    hash_kind: str | None = None
    size: int | None = None
    nfiles: int | None = None
    remote: str | None = None
    source: str | None = None
    dirty: bool | None = None
    dirty_check: str | None = None
    #: Whether this version is in the workspace's DVC remote, so others can fetch it (None:
    #: unknown: no remote, or it did not answer).
    pushed: bool | None = None


@dataclass(frozen=True)
class ArtifactRecord:
    name: str
    sha256: str
    size: int
    uri: str
    created_time: float


@dataclass
class RunRecord:
    """Everything recorded about one run."""

    id: str
    project: str
    name: str | None
    owner: str
    stored_status: str
    start_time: float
    end_time: float | None = None
    heartbeat_time: float | None = None
    heartbeat_interval: float | None = None
    question: str | None = None
    notes: str | None = None
    conclusion: str | None = None
    failure: str | None = None
    fingerprint: str | None = None
    code: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    entry_point: str | None = None
    cwd: str | None = None
    hostname: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    #: The id of the run this one is nested in (a trial of a sweep, a fold, an MLflow child).
    parent_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    datasets: list[DatasetUse] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Stored status, or CRASHED when a RUNNING run's heartbeat has stopped."""
        return derived_status(self.stored_status, self.heartbeat_time, self.heartbeat_interval)

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.start_time, UTC)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to the last heartbeat for a crashed run)."""
        end = self.end_time or (self.heartbeat_time if self.status == RunStatus.CRASHED else None)
        return None if end is None else max(0.0, end - self.start_time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        return data


def derived_status(stored: str, heartbeat: float | None, interval: float | None,
                   now: float | None = None) -> str:
    """Turn a RUNNING run whose heartbeat is overdue into CRASHED."""
    if stored != RunStatus.RUNNING or heartbeat is None or not interval:
        return stored
    now = time.time() if now is None else now
    if now - heartbeat > RunStatus.MISSED_BEATS * interval:
        return RunStatus.CRASHED
    return stored
