"""The live run handle a training script holds."""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import os
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry._params import ParamValue, flatten_params, typed_value
from registry.artifacts import ArtifactStore, clean_name
from registry.capture.sampler import start_sampler
from registry.entities import ArtifactRecord, DatasetUse, RunRecord, RunStatus
from registry.errors import (
    DataNotTrackedError,
    MetricError,
    ParamError,
    RunStateError,
    StoreError,
)
from registry.text import is_utf8, to_utf8
from registry.tracking import _lifecycle, spool
from registry.tracking._artifact_spool import Uploads
from registry.tracking._tags import clean_tags
from registry.tracking._usage import Usage
from registry.tracking._writer import CLOSE_TIMEOUT_S, WAKE_AT, MetricWriter, Slot

__all__ = ["Run"]

log = logging.getLogger("registry")
MAX_METRIC_KEY = 250
_MIN_STEP, _MAX_STEP = -(2**63), 2**63 - 2
_DATASET_FIELDS = set(DatasetUse.__dataclass_fields__) - {"role"}


class Run:
    """An active run: log metrics, params, tags, data and artifacts; end it (or use ``with``)."""

    def __init__(self, *, run_id: str, run_pk: int, project: str, name: str | None, owner: str,
                 store, artifacts: ArtifactStore, workspace, params: Mapping[str, ParamValue],
                 warnings: list[str], code: Mapping[str, Any] | None = None,
                 tried: list | None = None, hardware: Mapping[str, Any] | None = None) -> None:
        self.id, self.project, self.name, self.owner = run_id, project, name, owner
        self.status = RunStatus.RUNNING
        self.warnings: list[str] = list(warnings)
        #: Earlier runs of the same or a similar experiment (``registry.knowledge.Prior``).
        self.tried: list = list(tried or [])
        self._code = dict(code or {})
        self._data: list[tuple[str, str | None, str]] = []
        self._pk, self._store, self._artifacts = run_pk, store, artifacts
        self._workspace = workspace
        self._params = dict(params)
        self._closed = False
        self._killed_by: int | None = None
        self._spools = itertools.count()  # numbers this run's spool files apart
        self._lock = threading.Lock()
        self._uploads = Uploads(self, store, artifacts, workspace, self._warn)
        self._mirror = _live_mirror(self, store)  # MLflow, when the workspace asks for it
        self._writer = MetricWriter(self._mirror.tap(store) if self._mirror else store, run_pk,
                                    flush_interval=workspace.flush_interval,
                                    heartbeat_interval=workspace.heartbeat_interval,
                                    warn=self._warn, name=f"cairn-writer-{run_id[:8]}",
                                    spill=self._spill_held)
        self._slots = self._writer.slots
        self._writer.start()
        self._usage: Usage | None = Usage(self, hardware, workspace)
        self._sampler = start_sampler(self.log_metrics, workspace.system_interval,
                                      warn=self._warn, name=f"cairn-sampler-{run_id[:8]}")
        _lifecycle.register(self)

    def __repr__(self) -> str:
        return f"<Run {self.id[:8]} {self.project}/{self.name or ''} {self.status}>"

    # -- metrics ----------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one value; costs the caller about a microsecond. Steps count up per key."""
        if self._closed:
            raise RunStateError(self.id, self.status, f"log metric {key!r}")
        slot = self._slots.get(key)
        if slot is None:
            slot = self._new_slot(key)
        if isinstance(value, (str, bytes, bytearray, memoryview)):
            raise MetricError(key, value, "value must be a number, not text")
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MetricError(key, value, f"value must be a number ({exc})") from None
        if step is None:
            step = slot.next_step
        elif type(step) is not int or not _MIN_STEP <= step <= _MAX_STEP:
            step = self._check_step(key, step)
        slot.next_step = step + 1
        queue = slot.queue
        queue.append((step, value, time.time()))
        if len(queue) >= WAKE_AT:
            self._writer.wake.set()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at the same step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def _new_slot(self, key: Any) -> Slot:
        if not isinstance(key, str) or not key or len(key) > MAX_METRIC_KEY:
            raise MetricError(key, None, f"names must be text of 1 to {MAX_METRIC_KEY} characters")
        if not key.isprintable() or not is_utf8(key):
            raise MetricError(key, None, "names must be printable, valid UTF-8 text")
        return self._writer.slot(key)

    @staticmethod
    def _check_step(key: str, step: Any) -> int:
        try:
            if isinstance(step, bool):
                raise TypeError("bool")
            step = operator.index(step)
        except TypeError:
            raise MetricError(key, step, "step must be an integer") from None
        if not _MIN_STEP <= step <= _MAX_STEP:
            raise MetricError(key, step, "step must fit in 64 bits")
        return step

    # -- params, tags, text -----------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add hyperparameters; re-logging a key with the same value is a no-op."""
        self._require_open("log params")
        new: dict[str, ParamValue] = {}
        for key, value in flatten_params(params).items():
            typed, warns = typed_value(key, value)
            for w in warns:
                self._warn(w)
            if key in self._params:
                if self._params[key] != typed:
                    raise ParamError(key, value, f"already recorded as {self._params[key].text!r}")
                continue
            new[key] = typed
        if new:
            self._store.log_params(self._pk, new)
            self._params.update(new)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, Any] | list[str]) -> None:
        """Set tags: a mapping of key to value, or a list of plain labels."""
        self._require_open("set tags")
        cleaned, replaced = clean_tags(tags)
        if replaced:
            self._warn("tags held characters no store keeps (NUL, invalid UTF-8); replaced by "
                       "U+FFFD")
        self._store.set_tags(self._pk, cleaned)

    def set_tag(self, key: str, value: Any = "") -> None:
        self.set_tags({key: value})

    def note(self, text: str) -> None:
        """Append a paragraph to the run's notes."""
        self._store.append_notes(self._pk, self._text("notes", text))

    def set_question(self, text: str) -> None:
        """The question or hypothesis this run tests."""
        self._store.update_run(self._pk, question=self._text("question", text))

    def set_conclusion(self, text: str) -> None:
        """What came out of the run, in words, for whoever comes next."""
        self._store.update_run(self._pk, conclusion=self._text("conclusion", text))

    def _text(self, field: str, text: str) -> str:
        text, replaced = to_utf8(text)
        if replaced:
            self._warn(f"{field} held characters no store keeps (NUL, invalid UTF-8); replaced "
                       "by U+FFFD")
        return text

    def log_mov(self, name: str, value: float, *, evidence: str | None = None,
                unit: str | None = None):
        """Record a measurement of one of the project's MoV definitions (who: the owner)."""
        from registry.knowledge.mov import log_mov

        self._require_open("log MoV")
        return log_mov(self._store, run_pk=self._pk, project=self.project, name=name,
                       value=value, evidence=evidence, who=self.owner, unit=unit,
                       workspace=self._workspace)

    # -- data and artifacts -----------------------------------------------------------------

    def use_data(self, path: str | os.PathLike, role: str = "train", *,
                 strict: bool = False) -> DatasetUse:
        """Record the DVC version of a dataset this run reads; warns (or, strict, raises)
        when the path is not tracked or differs from what DVC recorded."""
        from registry.capture.dvc import capture_data

        version, warns = capture_data(path, state_dir=self._workspace.state_dir)
        if strict and not version.tracked:
            raise DataNotTrackedError(os.fspath(path), "; ".join(warns) or "not tracked by DVC")
        return self._add_data(version, role, warns)

    def _add_data(self, version, role: str, warns: list[str], recheck: bool = True) -> DatasetUse:
        """Store a captured data version (a ``capture.dvc.DataVersion``) as used in ``role``."""
        fields = {k: v for k, v in version.to_dict().items() if k in _DATASET_FIELDS}
        use = DatasetUse(role=role, **fields)
        self._store.add_dataset_use(self._pk, use)
        self._data.append((role, use.hash, use.path))
        for w in warns:
            self._warn(w)
        if use.dirty:
            self._warn(f"data {use.path!r} differs from the version DVC recorded ({use.hash})")
        if recheck:
            self._recheck()
        return use

    def _recheck(self) -> None:
        """New data changes what this experiment is: update its keys, warn of new priors."""
        from registry.knowledge.groups import group_key
        from registry.knowledge.similarity import SIMILAR_ENOUGH, RunSpec, describe_all, find_priors

        ws = self._workspace
        spec = RunSpec(self._params, tuple(self._data), self._code, ws.fingerprint_ignore)
        self._store.update_run(self._pk, fingerprint=spec.fingerprint, data_key=spec.data_key,
                               group_key=group_key(spec, ws.seed_params))
        if ws.on_duplicate == "ignore":
            return
        # A prior is new news when unseen, or when it was similar and is now the same run.
        exact = {p.run.id: p.exact for p in self.tried}
        fresh = [p for p in find_priors(self._store, spec, exclude=self._pk, limit=5,
                                        min_score=SIMILAR_ENOUGH)
                 if p.run.id not in exact or (p.exact and not exact[p.run.id])]
        upgraded = {p.run.id for p in fresh}
        self.tried = [p for p in self.tried if p.run.id not in upgraded] + fresh
        for line in describe_all(fresh, ws.projects):
            self._warn(line)

    def log_artifact(self, path: str | os.PathLike,
                     name: str | None = None) -> ArtifactRecord | None:
        """Store a file (or every file of a folder, at once) content-addressed; returns the
        record (a folder's last file's; None for an empty folder).

        An artifact the store cannot take now (unreachable, refusing, full) never ends the
        run: it is copied to the workspace's spool, the run says so in its warnings, and it is
        stored and recorded later (see :mod:`registry.tracking._artifact_spool`). Only a bad
        name or a file that cannot be read raise ArtifactError."""
        self._require_open("log artifact")
        path = Path(path)
        if path.is_dir():
            files = [(f, clean_name(f"{name or path.name}/{f.relative_to(path).as_posix()}"))
                     for f in sorted(path.rglob("*")) if f.is_file()]
        else:
            files = [(path, clean_name(name or path.name))]
        records = self._uploads.log(files) if files else []
        return records[-1] if records else None

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every metric logged so far is durable; False if the store refused."""
        return self._writer.flush(timeout)

    def end(self, status: str = RunStatus.FINISHED, failure: str | None = None, *,
            timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush, stop the writer and record the final status. Idempotent.

        Waits at most ``timeout`` seconds for a store that hangs (and retries one that refuses
        for at most 5 s). What still cannot be written, the final status included, is saved to
        the workspace's spool and delivered later (see :mod:`registry.tracking.spool`).
        """
        self._finish_usage()
        if not self._closed:
            self._uploads.finish()  # artifacts spooled while the store refused them
        with self._lock:
            if self._closed:
                return
            self._closed = True
        lost = self._writer.close(timeout)
        self.status = status
        _lifecycle.unregister(self)
        if self._mirror is not None:
            self._mirror.stop(self.warnings)
        path = self._spool_path() if lost else None
        if path is not None:
            self.warnings.append(f"{_points(lost)} metric points could not reach the store and "
                                 f"were saved to {path}; they are delivered by the next run "
                                 "started in this workspace or by `cairn runs deliver`")
        end = spool.EndRecord(status, time.time(), failure, tuple(self.warnings))
        if self._record_end(end):
            end = None
        if path is not None or end is not None:
            self._spool(path or self._spool_path(), lost, end)
        elif self._writer.spilled:  # the store is back: deliver what was moved out meanwhile
            self._deliver_spilled()
        if self._mirror is not None:
            self._mirror.finish(self.warnings)

    def _finish_usage(self) -> None:
        """Stop the system sampler (its last sample) and record device hours, energy and
        cost while the run still takes metrics (once)."""
        with self._lock:
            usage, self._usage = (None, None) if self._closed else (self._usage, None)
        if usage is None:
            return
        report = self._sampler.stop() if self._sampler is not None else None  # never raises
        try:
            usage.finish(report)
        except Exception as exc:  # what a run cost must never end it badly
            self._warn(f"could not record the run's cost: {exc!r}")
        if report is not None:
            logged = any(slot.next_step > 1 for key, slot in list(self._slots.items())
                         if not key.startswith("system/"))
            idle = report.idle_warning(logged_steps=logged)
            if idle:
                self._warn(idle)

    def _record_end(self, end: spool.EndRecord) -> bool:
        """Tell the store how the run ended; False when it cannot be told now."""
        if self._writer.stuck:  # a store call hangs: don't wait on another one
            return False
        try:
            self._store.update_run(self._pk, status=end.status, end_time=end.end_time,
                                   heartbeat_time=time.time(), failure=end.failure,
                                   warnings=list(end.warnings))
        except StoreError as exc:  # ending must not crash the script; the spool keeps it
            log.error("cairn: could not record that run %s ended %s (%s)", self.id, end.status,
                      exc)
            return False
        return True

    def record(self) -> RunRecord:
        """What the store holds for this run now (metrics as of the last flush)."""
        return self._store.get_run(self._pk)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(*self._outcome(exc))

    def _outcome(self, exc: BaseException | None) -> tuple[str, str | None]:
        if exc is None:
            return RunStatus.FINISHED, None
        text = "".join(traceback.format_exception(exc))
        if self._killed_by is not None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return RunStatus.KILLED, text
        return RunStatus.FAILED, text

    def _end_at_exit(self, exc: BaseException | None) -> None:
        try:
            self.end(*self._outcome(exc))
        except Exception as error:  # the interpreter is going away; say why, don't raise
            log.error("cairn: could not end run %s at exit: %s", self.id, error)

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise RunStateError(self.id, self.status, action)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("cairn: %s", message)
        if not self._closed:
            try:
                self._store.update_run(self._pk, warnings=self.warnings)
            except Exception as exc:  # a warning must never crash the training loop
                log.debug("cairn: could not store warning: %s", exc)

    def _spool(self, path: Path, chunks: list, end: spool.EndRecord | None) -> None:
        """Save what the store could not take; say so loudly, naming the file."""
        parts = [f"{_points(chunks)} metric points"] if chunks else []
        parts += [f"the final status {end.status}"] if end is not None else []
        what = " and ".join(parts)
        try:
            spool.write(path, self.id, self._store.url, chunks, end)
        except OSError as exc:
            self.warnings.append(f"LOST {what}: the store was unreachable and the spool file "
                                 f"{path} could not be written ({exc})")
            log.error("cairn: run %s: %s", self.id, self.warnings[-1])
            if end is None:  # the status is recorded: correct its warnings if we can
                with contextlib.suppress(StoreError):
                    self._store.update_run(self._pk, warnings=self.warnings)
            return
        log.error("cairn: run %s: %s could not reach the store %s and were saved to %s; "
                  "they are delivered by the next run started in this workspace or by "
                  "`cairn runs deliver`", self.id, what, spool.store_identity(self._store.url),
                  path)

    def _spool_path(self) -> Path:
        return spool.spool_path(self._workspace, self.id, next(self._spools) * 100)

    def _spill_held(self, chunks: list) -> bool:
        """The writer's callback when it holds too much for a store that keeps refusing."""
        path = self._spool_path()
        try:
            spool.write(path, self.id, self._store.url, chunks)
        except OSError as exc:
            log.error("cairn: run %s: could not move %d held metric points to %s (%s); "
                      "keeping them in memory", self.id, _points(chunks), path, exc)
            return False
        self.warnings.append(f"the store was unreachable: {_points(chunks)} metric points were "
                             f"moved from memory to {path}")
        log.error("cairn: run %s: %s", self.id, self.warnings[-1])
        return True

    def _deliver_spilled(self) -> None:
        try:
            report = spool.deliver(self._workspace, store=self._store, run_id=self.id)
        except Exception as exc:  # the run has ended; the files stay for a later delivery
            log.error("cairn: run %s: could not deliver its spool files: %s; run `cairn runs "
                      "deliver` later", self.id, exc)
            return
        for spooled, reason in report.failed:
            log.error("cairn: run %s: spool file %s not delivered: %s; run `cairn runs "
                      "deliver` later", self.id, spooled, reason)


def _points(chunks: list) -> int:
    return sum(len(c[2]) for c in chunks)


def _live_mirror(run: Run, store):
    """A live MLflow mirror (``[mlflow] live = true``), imported only when switched on."""
    if not (run._workspace.mlflow or {}).get("live"):
        return None
    from registry.transfer.mlflow.live import start_mirror

    return start_mirror(run, store)
