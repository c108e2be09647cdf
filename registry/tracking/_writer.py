"""The background writer: metric points leave the training loop in microseconds.

``log_metric`` appends ``(step, value, time)`` to its metric's deque (thread-safe, no lock).
A daemon thread wakes every flush interval (or sooner when a queue is long), drains each
queue, updates the metric's running summary, packs the points into chunks, and writes
chunks, summaries and the heartbeat in one transaction. A batch the store refused stays
pending and is retried every interval; the retry first skips chunks already stored, since
a connection lost while committing leaves it unknown whether the commit happened.

When the run ends, :meth:`MetricWriter.close` waits at most ``CLOSE_TIMEOUT_S`` (30 s) for
a store that hangs (a SQLite file locked by another process, a server that stops answering),
and retries a store that refuses at once for at most ``CLOSE_RETRY_S`` (5 s, enough to ride
out a PostgreSQL restart). What is still unwritten then is handed back to be spooled
(:mod:`registry.tracking.spool`); nothing is dropped silently. While the store refuses, at most
``HOLD_POINTS`` points are held in memory; beyond that the pending chunks are handed to the
``spill`` callback (the run writes them to its spool) and memory is freed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from registry._history import Chunk, Summary, split
from registry.entities import MetricSummary
from registry.errors import StoreError

__all__ = ["MetricWriter", "Slot"]

log = logging.getLogger("registry")

WAKE_AT = 50_000  # queue length that wakes the writer before its interval is up
CLOSE_TIMEOUT_S = 30.0  # longest close() waits for a store call that hangs
CLOSE_RETRY_S = 5.0  # longest close() keeps retrying a store that refuses
HOLD_POINTS = 2_000_000  # points held in memory (about 120 B each) while the store refuses


class Slot:
    """One metric's queue and bookkeeping, shared by the logging and the writing thread."""

    __slots__ = ("flagged", "key", "next_seq", "next_step", "queue", "summary")

    def __init__(self, key: str) -> None:
        self.key = key
        self.queue: deque[tuple[int, float, float]] = deque()
        self.next_step = 0
        self.next_seq = 0
        self.summary = Summary()
        self.flagged = False


class MetricWriter:
    """Drains one run's metric queues into the store from a daemon thread."""

    def __init__(self, store, run_pk: int, *, flush_interval: float, heartbeat_interval: float,
                 warn: Callable[[str], None], name: str = "cairn-writer",
                 spill: Callable[[list[Chunk]], bool] | None = None) -> None:
        self.slots: dict[str, Slot] = {}
        self.written = self.spilled = 0
        self.last_error: Exception | None = None
        #: True once close() gave up on a store call that did not return in time.
        self.stuck = False
        self._store, self._run_pk, self._warn, self._spill = store, run_pk, warn, spill
        self._flush_interval, self._heartbeat_interval = flush_interval, heartbeat_interval
        self._pending: list[Chunk] = []  # drained, not known to be durable
        self._dirty: set[str] = set()
        self._batch = threading.Lock()  # draining and composing a batch
        self._last_beat = time.time()
        self.wake = threading.Event()
        self._cycle = threading.Condition()
        self._started = self._done = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def slot(self, key: str) -> Slot:
        """The slot of a metric, created on first use."""
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = Slot(key)
        return slot

    @property
    def pending(self) -> int:
        """Points logged but not yet durable."""
        queued = sum(len(s.queue) for s in list(self.slots.values()))
        return queued + sum(len(c[2]) for c in list(self._pending))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point logged before this call has been written (or tried)."""
        if not self._thread.is_alive():
            self._cycle_once()
            return not self._pending
        with self._cycle:
            target = self._started + 1
            self.wake.set()
            done = self._cycle.wait_for(lambda: self._done >= target, timeout)
        return done and not self._pending

    def close(self, timeout: float = CLOSE_TIMEOUT_S,
              retry_for: float = CLOSE_RETRY_S) -> list[Chunk]:
        """Stop the thread after a last flush; returns the chunks not known to be durable.

        Waits at most ``timeout`` for the thread; a store that refuses is retried for at most
        ``retry_for`` more. Chunks a hung call may still commit are returned too: delivering
        them from the spool skips what is already stored.
        """
        deadline = time.monotonic() + timeout
        self._stopping = True
        self.wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.stuck = True
        else:
            give_up = min(deadline, time.monotonic() + retry_for)
            while self.pending and time.monotonic() < give_up:
                time.sleep(min(0.5, self._flush_interval, max(0.0, give_up - time.monotonic())))
                self._cycle_once()
        flags: list[str] = []
        with self._batch:
            self._pending = left = self._pending + self._drain(flags)
        for message in flags:
            self._warn(message)
        return list(left)

    def _loop(self) -> None:
        while True:
            self.wake.wait(self._flush_interval)
            self.wake.clear()
            stopping = self._stopping
            if self.stuck:  # close() gave up on us and spooled what we held
                return
            self._cycle_once()
            if stopping:
                return

    def _cycle_once(self) -> None:
        with self._cycle:
            self._started += 1
        try:
            self._write()
        except Exception as exc:  # a bug must not kill the thread that keeps the data
            log.exception("cairn: metric writer failed: %s", exc)
        with self._cycle:
            self._done += 1
            self._cycle.notify_all()

    def _drain(self, flags: list[str]) -> list[Chunk]:
        """Move queued points into chunks (the caller holds ``_batch``); warnings go to
        ``flags``, to be given once the lock is released (a warning may wait on the store)."""
        chunks: list[Chunk] = []
        for key, slot in list(self.slots.items()):
            queue = slot.queue
            n = len(queue)
            if not n:
                continue
            steps, values, times = zip(*[queue.popleft() for _ in range(n)], strict=True)
            bad = slot.summary.add(steps, values, times)
            if bad >= 0 and not slot.flagged:
                slot.flagged = True
                flags.append(f"metric {key!r} got a non-finite value ({values[bad]}) at step "
                             f"{steps[bad]}; recorded and counted in the metric's summary")
            for part in split(steps, values, times):
                chunks.append((key, slot.next_seq, *part))
                slot.next_seq += 1
            self._dirty.add(key)
        return chunks

    def _compose(self) -> tuple[list[Chunk], list[MetricSummary], set[str]]:
        """The batch to write: pending chunks, newly drained ones, and their summaries."""
        flags: list[str] = []
        with self._batch:
            self._pending = chunks = self._pending + self._drain(flags)
            dirty = set(self._dirty)
            summaries = [self.slots[k].summary.freeze(k) for k in dirty]
        for message in flags:
            self._warn(message)
        return chunks, summaries, dirty

    def _write(self) -> None:
        now = time.time()
        beat = now - self._last_beat >= self._heartbeat_interval
        chunks, summaries, dirty = self._compose()
        if not chunks and not beat:
            return
        extra = {"heartbeat_time": now} if beat else {}
        try:
            todo = self._unwritten(chunks) if self.last_error is not None else chunks
            self.written += self._store.log_metrics(self._run_pk, todo, summaries, **extra)
        except StoreError as exc:
            if self.last_error is None:
                log.warning("cairn: cannot write metrics yet (%s); keeping %d points and retrying",
                            exc, sum(len(c[2]) for c in chunks))
            self.last_error = exc
            self._spill_if_full(chunks)
            return
        if self.last_error is not None:
            log.warning("cairn: the store is back; wrote the %d points kept meanwhile",
                        sum(len(c[2]) for c in chunks))
        with self._batch:
            self._pending = self._pending[len(chunks):]
            self._dirty -= dirty
        self.last_error = None
        if beat:
            self._last_beat = now

    def _spill_if_full(self, chunks: list[Chunk]) -> None:
        """Hand the held chunks to ``spill`` once they pass ``HOLD_POINTS``."""
        points = sum(len(c[2]) for c in chunks)
        if self._spill is None or points < HOLD_POINTS or not self._spill(chunks):
            return
        with self._batch:
            self._pending = self._pending[len(chunks):]
        self.spilled += points

    def _unwritten(self, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks not yet stored (an earlier try may have committed before it failed)."""
        if not chunks:
            return chunks
        stored = self._store.stored_chunks(self._run_pk, chunks)
        return [c for c in chunks if (c[0], c[1]) not in stored]
