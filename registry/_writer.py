"""The background writer: metric points leave the training loop in microseconds.

``log_metric`` appends a tuple to a deque (thread-safe, no lock). A daemon thread wakes every
flush interval (or sooner when the queue is long), drains it, keeps each metric's running
summary, and writes points, summaries and the heartbeat in one transaction. A batch the store
refused stays pending and is retried; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from registry.entities import MetricSummary
from registry.errors import StoreError

__all__ = ["MetricWriter"]

log = logging.getLogger("registry")

Point = tuple[str, int, float, float]  # key, step, value, time
WAKE_AT = 20_000  # queue length that wakes the writer before its interval is up


class _Summary:
    __slots__ = ("count", "last", "last_step", "last_time", "max", "min", "nonfinite")

    def __init__(self) -> None:
        self.count = self.nonfinite = 0
        self.last: float | None = None
        self.last_step, self.last_time = -(2**63), 0.0
        self.min: float | None = None
        self.max: float | None = None

    def add(self, step: int, value: float, t: float) -> None:
        self.count += 1
        if step >= self.last_step:
            self.last, self.last_step, self.last_time = value, step, t
        if value != value or value in (math.inf, -math.inf):
            self.nonfinite += 1
        else:
            self.min = value if self.min is None or value < self.min else self.min
            self.max = value if self.max is None or value > self.max else self.max

    def freeze(self, key: str) -> MetricSummary:
        return MetricSummary(key, self.last, self.last_step, self.last_time, self.min, self.max,
                             self.count, self.nonfinite)


class MetricWriter:
    """Drains one run's metric queue into the store from a daemon thread."""

    def __init__(self, store, run_pk: int, *, flush_interval: float, heartbeat_interval: float,
                 warn: Callable[[str], None], name: str = "cairn-writer") -> None:
        self.queue: deque[Point] = deque()
        self.written = 0
        self.last_error: Exception | None = None
        self._store, self._run_pk, self._warn = store, run_pk, warn
        self._flush_interval, self._heartbeat_interval = flush_interval, heartbeat_interval
        self._summaries: dict[str, _Summary] = {}
        self._pending: list[Point] = []
        self._dirty: set[str] = set()
        self._flagged: set[str] = set()
        self._last_beat = time.time()
        self._wake = threading.Event()
        self._cycle = threading.Condition()
        self._started = self._done = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        """Points logged but not yet durable."""
        return len(self.queue) + len(self._pending)

    def summaries(self) -> dict[str, MetricSummary]:
        return {key: s.freeze(key) for key, s in self._summaries.items()}

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point logged before this call has been written (or tried)."""
        if not self._thread.is_alive():
            self._cycle_once()
            return not self._pending
        with self._cycle:
            target = self._started + 1
            self._wake.set()
            done = self._cycle.wait_for(lambda: self._done >= target, timeout)
        return done and not self._pending

    def close(self, timeout: float = 30.0) -> list[Point]:
        """Stop the thread after a last flush; returns points that could not be written."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():  # still writing: leave it be rather than race it
            return self._pending + list(self.queue)
        while self.pending and time.monotonic() < deadline:
            self._cycle_once()
            if self._pending:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        return self._pending + list(self.queue)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            stopping = self._stopping
            self._cycle_once()
            if stopping:
                return

    def _cycle_once(self) -> None:
        with self._cycle:
            self._started += 1
        try:
            self._write(self._drain())
        except Exception as exc:  # a bug must not kill the thread that keeps the data
            log.exception("cairn: metric writer failed: %s", exc)
        with self._cycle:
            self._done += 1
            self._cycle.notify_all()

    def _drain(self) -> list[Point]:
        queue, batch = self.queue, []
        for _ in range(len(queue)):
            point = queue.popleft()
            batch.append(point)
            key, step, value, t = point
            summary = self._summaries.get(key)
            if summary is None:
                summary = self._summaries[key] = _Summary()
            summary.add(step, value, t)
            if value != value or value in (math.inf, -math.inf):
                self._flag(key, step, value)
        self._dirty.update(key for key, *_ in batch)
        return batch

    def _flag(self, key: str, step: int, value: float) -> None:
        if key not in self._flagged:
            self._flagged.add(key)
            self._warn(f"metric {key!r} got a non-finite value ({value}) at step {step}; "
                       "recorded and counted in the metric's summary")

    def _write(self, batch: list[Point]) -> None:
        now = time.time()
        beat = now - self._last_beat >= self._heartbeat_interval
        points = self._pending + batch
        if not points and not beat:
            return
        extra = {"heartbeat_time": now} if beat else {}
        summaries = [self._summaries[k].freeze(k) for k in self._dirty]
        try:
            self.written += self._store.log_metrics(self._run_pk, points, summaries, **extra)
        except StoreError as exc:
            self._pending = points
            if self.last_error is None:
                log.warning("cairn: cannot write metrics yet (%s); keeping %d points and retrying",
                            exc, len(points))
            self.last_error = exc
            return
        self._pending, self.last_error = [], None
        self._dirty.clear()
        if beat:
            self._last_beat = now
