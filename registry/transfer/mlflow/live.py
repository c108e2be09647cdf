"""Live mirroring: a running run copied into MLflow as it trains, from a daemon thread.

Switched on by the workspace configuration::

    [mlflow]
    tracking_uri = "http://mlflow.internal:5000"
    live = true
    timeout = 10          # seconds ``run.end()`` waits for the final sync (default 10)
    queue = 1000          # metric batches held for MLflow before dropping (default 1000)

The metric writer's store is wrapped (:meth:`LiveMirror.tap`): after each batch is durable in
the registry it is offered to a bounded queue, without blocking. The mirror thread imports
MLflow, creates the MLflow run (tags, params, data) and streams the batches with
``log_batch``. When MLflow is slow or down the queue fills: batches are dropped and counted,
streaming stops, and the drop is reported as a run warning. At ``run.end()`` a final
incremental export fills in whatever is missing (dropped points included) and records the
status, artifacts and the link. Nothing here raises into the training script.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["LiveMirror", "start_mirror"]

log = logging.getLogger("registry")


def start_mirror(run: Any, store: Any) -> LiveMirror | None:
    """A started mirror for ``run`` when the workspace asks for one (never raises)."""
    settings: Mapping[str, Any] = run._workspace.mlflow or {}
    if not settings.get("live"):
        return None
    try:
        mirror = LiveMirror(store, run._pk, run.id, run._workspace, settings)
        mirror.start()
    except Exception as exc:  # the training run goes on without a mirror
        run.warnings.append(f"live MLflow mirror not started: {exc}")
        return None
    return mirror


class LiveMirror:
    """Mirrors one run into one MLflow tracking URI."""

    def __init__(self, store: Any, run_pk: int, run_id: str, workspace: Any,
                 settings: Mapping[str, Any]) -> None:
        uri = settings.get("tracking_uri")
        if not uri:
            raise ValueError("mlflow.live needs mlflow.tracking_uri in the workspace config")
        self.uri, self.run_id, self._pk = str(uri), run_id, run_pk
        self._store, self._workspace = store, workspace
        self.timeout = float(settings.get("timeout", 10.0))
        self._queue: queue.Queue = queue.Queue(int(settings.get("queue", 1000)))
        self.dropped = self.streamed = 0
        self.streaming = True
        self.error: Exception | None = None
        self._stopped, self._finish = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"cairn-mlflow-{run_id[:8]}")

    def start(self) -> None:
        self._thread.start()

    def tap(self, store: Any) -> _Tap:
        """``store`` as the metric writer sees it, offering each written batch to MLflow."""
        return _Tap(store, self)

    def offer(self, chunks: list) -> None:
        """Queue a written batch for MLflow; drop it (counted) when the queue is full."""
        if not self.streaming:
            self.dropped += _points(chunks)
            return
        try:
            self._queue.put_nowait(chunks)
        except queue.Full:
            self.streaming = False  # later points would leave a gap; the final sync fills it
            self.dropped += _points(chunks)

    def stop(self, warnings: list[str]) -> None:
        """No more metrics are coming; add a warning if any were dropped."""
        self.streaming = False
        self._stopped.set()
        if self.dropped:
            warnings.append(f"live MLflow mirror to {self.uri} dropped {self.dropped} metric "
                            "points (MLflow was slow or down); the final sync at the end of "
                            "the run adds them, or run `cairn mlflow export`")

    def finish(self, warnings: list[str]) -> None:
        """Let the final sync run (status, artifacts, missing points), waiting a bounded time."""
        self._finish.set()
        self._thread.join(self.timeout)
        problem = None
        if self._thread.is_alive():
            problem = (f"live MLflow mirror to {self.uri} did not finish within "
                       f"{self.timeout:g} s; run `cairn mlflow export` to complete it")
        elif self.error is not None:
            problem = (f"live MLflow mirror to {self.uri} failed: {self.error}; run "
                       "`cairn mlflow export` to retry")
        if problem:
            warnings.append(problem)
            log.warning("cairn: %s", problem)
            try:
                self._store.update_run(self._pk, warnings=warnings)
            except Exception as exc:  # the run has ended; say so, never raise
                log.debug("cairn: could not store warning: %s", exc)

    # -- the mirror thread --------------------------------------------------------------------

    def _main(self) -> None:
        exporter = mlflow_run = None
        try:
            from registry.artifacts import ArtifactStore
            from registry.transfer.mlflow.export import Exporter

            exporter = Exporter(self._store, ArtifactStore(self._workspace.artifact_root),
                                self.uri, models=False)
            mlflow_run = exporter.start_live(self._pk)
        except Exception as exc:  # MLflow down or misconfigured: the run goes on
            self._fail(exc)
        self._stream(exporter, mlflow_run)
        self._finish.wait()
        if exporter is None:
            return
        try:  # also a retry when MLflow was down at the start
            result = exporter.export([self._pk])
            failed = next(iter(result.failed.values()), None)
            self.error = RuntimeError(failed) if failed else None
        except Exception as exc:
            self.error = exc

    def _stream(self, exporter: Any, mlflow_run: str | None) -> None:
        while True:
            try:
                chunks = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopped.is_set():
                    return
                continue
            if mlflow_run is None or not self.streaming:
                self.dropped += _points(chunks)
                continue
            try:
                self.streamed += exporter.stream(mlflow_run, chunks)
            except Exception as exc:
                self.dropped += _points(chunks)
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.streaming = False
        self.error = exc
        log.warning("cairn: live MLflow mirror to %s stopped: %s", self.uri, exc)


class _Tap:
    """The store, with ``log_metrics`` also offering what was written to the mirror."""

    def __init__(self, store: Any, mirror: LiveMirror) -> None:
        self._store, self._mirror = store, mirror

    def log_metrics(self, run_pk: int, chunks: list, summaries: Any, **run_values: Any) -> int:
        written = self._store.log_metrics(run_pk, chunks, summaries, **run_values)
        try:
            self._mirror.offer(chunks)
        except Exception as exc:  # never let the mirror break the writer
            log.debug("cairn: live MLflow mirror: %s", exc)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _points(chunks: Any) -> int:
    return sum(len(c[2]) for c in chunks) if isinstance(chunks, list) else 0
