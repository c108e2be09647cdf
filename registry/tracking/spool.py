"""The local spool: what a run could not write to the store, kept until it can be delivered.

When the store is unreachable as a run ends, the metric chunks still unwritten (and the final
status, end time, failure and warnings, when those could not be recorded either) are saved to
``.cairn/spool/<run id>.jsonl`` in the workspace; so are the chunks a writer holds past its
memory cap during a long outage (a run that ends with the store back delivers those itself).
A later ``registry.start_run`` in the same workspace on the same store delivers them on its
way (a single directory listing when there is nothing to deliver); :func:`deliver` and
``cairn runs deliver`` do it on demand. Artifacts that could not be stored wait beside them,
in ``artifacts/`` (see :mod:`registry.tracking._artifact_spool`), and are delivered with them.

The file is JSON lines, written whole and then renamed into place::

    {"format": "cairn-spool", "version": 1, "run_id": "...", "store": "...", "created": 1.7e9}
    {"type": "chunk", "key": "loss", "seq": 7, "steps": [...], "values": [...], "times": [...]}
    {"type": "end", "status": "FINISHED", "end_time": 1.7e9, "failure": null, "warnings": []}

``store`` names the store (its URL without the password); values that are not finite are
written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``. Delivery is idempotent: a chunk
whose (run, key, seq) is already stored is skipped, the metric's summary is recomputed from the
stored history plus the delivered chunks, and a file is removed only after everything in it
is durable in the store. A file that cannot be delivered stays and is reported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry._history import Chunk
from registry.entities import RunStatus
from registry.errors import CairnError, SpoolError
from registry.tracking._artifact_spool import deliver as deliver_artifacts
from registry.tracking._artifact_spool import pending_files
from registry.tracking._artifact_spool import spool_dir as spool_dir
from registry.tracking._artifact_spool import store_identity as store_identity

__all__ = [
    "FORMAT",
    "VERSION",
    "DeliveryReport",
    "EndRecord",
    "Spooled",
    "deliver",
    "deliver_pending",
    "read",
    "spool_dir",
    "spool_path",
    "spooled_files",
    "store_identity",
    "write",
]

log = logging.getLogger("registry")
FORMAT, VERSION = "cairn-spool", 1


@dataclass(frozen=True)
class EndRecord:
    """How a run ended, when the store could not be told at the time."""

    status: str
    end_time: float
    failure: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spooled:
    """The contents of one spool file."""

    path: Path
    run_id: str
    store: str
    created: float
    chunks: list[Chunk]
    end: EndRecord | None = None

    @property
    def points(self) -> int:
        return sum(len(c[2]) for c in self.chunks)


@dataclass
class DeliveryReport:
    """What :func:`deliver` did: files delivered (and removed), files left and why."""

    delivered: list[Path] = field(default_factory=list)
    points: int = 0  #: points written to the store
    duplicates: int = 0  #: spooled points that were already stored (skipped)
    statuses: int = 0  #: final statuses recorded
    artifacts: int = 0  #: spooled artifacts stored and recorded
    failed: list[tuple[Path, str]] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)  #: being delivered by another process

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, other: Any) -> None:
        """Count in what an artifact delivery did (``_artifact_spool.Delivery``)."""
        self.delivered += other.delivered
        self.artifacts += len(other.delivered)
        self.failed += other.failed
        self.busy += other.busy

    def summary(self) -> str:
        """One line per outcome, for people."""
        lines = [f"delivered {len(self.delivered)} spool files: {self.points} metric points, "
                 f"{self.statuses} final statuses, {self.artifacts} artifacts "
                 f"({self.duplicates} points were already stored)"]
        lines += [f"not delivered: {path}: {reason}" for path, reason in self.failed]
        lines += [f"left to another process delivering it: {path}" for path in self.busy]
        return "\n".join(lines)


# -- identity and places ---------------------------------------------------------------------


def spooled_files(workspace) -> list[Path]:
    """Spool files waiting in the workspace, oldest name first (one directory listing)."""
    try:
        with os.scandir(spool_dir(workspace)) as entries:
            return sorted(Path(e.path) for e in entries if e.name.endswith(".jsonl"))
    except FileNotFoundError:
        return []


def spool_path(workspace, run_id: str, start: int = 0) -> Path:
    """A free file name for a run's spool, numbered from ``start`` (a run that spools from
    two threads passes each its own number, so they never pick the same name)."""
    folder = spool_dir(workspace)
    n = start
    while True:
        path = folder / (f"{run_id}.{n}.jsonl" if n else f"{run_id}.jsonl")
        if not path.exists():
            return path
        n += 1


# -- writing and reading ---------------------------------------------------------------------


def write(path: Path, run_id: str, store_url: str, chunks: Sequence[Chunk],
          end: EndRecord | None = None) -> int:
    """Write a spool file whole (temporary file, fsync, rename); returns the points saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    header = {"format": FORMAT, "version": VERSION, "run_id": run_id,
              "store": store_identity(store_url), "created": time.time()}
    with temp.open("w", encoding="utf-8") as fh:
        fh.write(_line(header))
        for key, seq, steps, values, times in chunks:
            fh.write(_line({"type": "chunk", "key": key, "seq": seq, "steps": list(steps),
                            "values": [_number(v) for v in values], "times": list(times)}))
        if end is not None:
            fh.write(_line({"type": "end", "status": end.status, "end_time": end.end_time,
                            "failure": end.failure, "warnings": list(end.warnings)}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
    return sum(len(c[2]) for c in chunks)


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n"


def _number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def read(path: Path) -> Spooled:
    """Parse a spool file; a malformed one raises :class:`SpoolError`."""
    with path.open(encoding="utf-8") as fh:
        return _parse(path, fh)


def _parse(path: Path, lines: Iterable[str]) -> Spooled:
    header: dict[str, Any] | None = None
    chunks: list[Chunk] = []
    end = None
    for number, text in enumerate(lines, 1):
        try:
            data = json.loads(text)
            if header is None:
                header = _header(path, data)
            elif data["type"] == "chunk":
                chunks.append(_chunk(data))
            elif data["type"] == "end":
                end = EndRecord(str(data["status"]), float(data["end_time"]),
                                data.get("failure"), tuple(data.get("warnings") or ()))
            else:
                raise ValueError(f"unknown record type {data['type']!r}")
        except SpoolError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise SpoolError(str(path), number, f"unreadable record ({exc})") from None
    if header is None:
        raise SpoolError(str(path), 0, "the file is empty")
    return Spooled(path, header["run_id"], header["store"], float(header["created"]),
                   chunks, end)


def _header(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("format") != FORMAT:
        raise SpoolError(str(path), 1, "not a Cairn spool file (no header)")
    if data.get("version") != VERSION:
        raise SpoolError(str(path), 1, f"format version {data.get('version')!r}; this Cairn "
                                       f"reads version {VERSION}: upgrade Cairn")
    return data


def _chunk(data: dict[str, Any]) -> Chunk:
    steps = [int(s) for s in data["steps"]]
    values = [float(v) for v in data["values"]]
    times = [float(t) for t in data["times"]]
    if not steps or not len(steps) == len(values) == len(times):
        raise ValueError("steps, values and times must be equally long and not empty")
    return str(data["key"]), int(data["seq"]), steps, values, times


# -- delivery --------------------------------------------------------------------------------


def deliver(workspace=None, *, store=None, run_id: str | None = None) -> DeliveryReport:
    """Send the workspace's spooled metric points, final statuses and artifacts to its store
    (only those of ``run_id``, if given).

    Idempotent; a file is removed once all it holds is durable in the store. Files that
    belong to another store, name a run the store does not have, or could not be written
    stay where they are and are listed in ``report.failed``.
    """
    from registry.config import load_workspace

    ws = workspace or load_workspace()
    store = store or ws.open_store()
    report = DeliveryReport()
    for path in spooled_files(ws):
        if run_id is not None and path.name.split(".")[0] != run_id:
            continue
        try:
            _deliver_file(store, path, report)
        except FileNotFoundError:
            continue  # another process delivered it meanwhile
        except BlockingIOError:
            report.busy.append(path)
        except (CairnError, OSError) as exc:
            report.failed.append((path, exc.reason if isinstance(exc, SpoolError) else str(exc)))
    if pending_files(ws):
        report.add(deliver_artifacts(ws, store, run_id=run_id))
    return report


def deliver_pending(workspace, store) -> DeliveryReport | None:
    """``start_run``'s best-effort delivery: logs what it did and never raises."""
    try:
        if not spooled_files(workspace) and not pending_files(workspace):
            return None
        report = deliver(workspace, store=store)
    except Exception as exc:  # a run must start even if delivery breaks
        log.warning("cairn: could not deliver the spool: %s; run `cairn runs deliver`", exc)
        return None
    if report.delivered:
        log.warning("cairn: %s", report.summary().splitlines()[0])
    for path, reason in report.failed:
        log.warning("cairn: spool file %s not delivered: %s", path, reason)
    return report


def _deliver_file(store, path: Path, report: DeliveryReport) -> None:
    with _locked(path) as fh:
        spooled = _parse(path, fh)
        here = store_identity(store.url)
        if spooled.store != here:
            raise SpoolError(str(path), 1, f"spooled for store {spooled.store}, not {here}: "
                                           "deliver it with CAIRN_STORE set to that store")
        pk = store.resolve(spooled.run_id)
        written, skipped = _deliver_chunks(store, pk, spooled.chunks)
        ended = _deliver_end(store, pk, spooled)
        path.unlink()
    report.delivered.append(path)
    report.points += written
    report.duplicates += skipped
    report.statuses += ended


@contextmanager
def _locked(path: Path) -> Iterator[Any]:
    """The open file, locked against a second deliverer (POSIX advisory lock)."""
    import fcntl

    with path.open(encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: someone else has it
        yield fh


def _deliver_chunks(store, pk: int, chunks: list[Chunk]) -> tuple[int, int]:
    if not chunks:
        return 0, 0
    stored = store.stored_chunks(pk, chunks)
    new = [c for c in chunks if (c[0], c[1]) not in stored]
    skipped = sum(len(c[2]) for c in chunks) - sum(len(c[2]) for c in new)
    if not new:
        return 0, skipped
    return store.log_metrics(pk, new, store.summaries_with(pk, new)), skipped


def _deliver_end(store, pk: int, spooled: Spooled) -> int:
    """Record the spooled final status (if the run still shows RUNNING) and a note."""
    record = store.get_run(pk)
    when = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%d %H:%M UTC")
    what = f"{spooled.points} metric points" + (" and the final status" if spooled.end else "")
    note = f"{what} delivered late from the local spool ({spooled.path.name}) on {when}"
    end = spooled.end
    if end is None or record.stored_status != RunStatus.RUNNING:
        store.update_run(pk, warnings=[*record.warnings, note])
        return 0
    warnings = list(end.warnings) + [w for w in record.warnings if w not in end.warnings]
    store.update_run(pk, status=end.status, end_time=end.end_time, heartbeat_time=end.end_time,
                     failure=end.failure, warnings=[*warnings, note])
    return 1
