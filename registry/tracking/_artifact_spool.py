"""Artifacts the store could not take, kept in the workspace until it can.

When a run's artifact cannot be stored (the object store unreachable or refusing, a missing
bucket, s3fs not installed, a full disk), ``run.log_artifact`` does not raise: the file is
copied to ``.cairn/spool/artifacts/``, content-addressed like the artifact store
(``sha256/ab/...``), with a JSON record of what it is::

    {"format": "cairn-artifact-spool", "version": 1, "run_id": "...", "store": "...",
     "root": "s3://bucket/prefix", "kind": "artifact", "name": "model.pt", "sha256": "...",
     "size": 123, "created": 1.7e9}

``kind`` is ``artifact`` (a row of the run's artifacts) or ``diff`` (the run's uncommitted
diff, ``git_diff_sha256``). The run's row is written only once the blob is whole in the store
named by ``root``, so nothing half-written is ever referenced. Delivery (the run's end, the next
``start_run`` in the workspace, ``cairn runs deliver``) is idempotent; a record is removed once
delivered, a spooled blob once no record needs it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from registry.artifacts import ArtifactStore
from registry.entities import ArtifactRecord
from registry.errors import ArtifactError, CairnError, SpoolError, StoreError

__all__ = ["Delivery", "Pending", "Uploads", "deliver", "pending_dir", "pending_files", "read",
           "save", "spool_dir", "store_identity"]

log = logging.getLogger("registry")
FORMAT, VERSION = "cairn-artifact-spool", 1
RETRY_AFTER_S = 60.0  # after a failure, spool at once for this long instead of waiting again


@dataclass(frozen=True)
class Pending:
    """One artifact waiting in the spool."""

    run_id: str
    store: str
    root: str
    kind: str
    name: str
    sha256: str
    size: int
    created: float


@dataclass
class Delivery:
    """What :func:`deliver` did: records delivered (and removed), records left and why,
    and the names delivered for each run."""

    delivered: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)  #: being delivered by another process
    names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def store_identity(url: str) -> str:
    """The store's URL without its password: what a spool file says it belongs to."""
    from registry.store import normalise_url, safe_url

    return safe_url(normalise_url(url))


def spool_dir(workspace) -> Path:
    """The workspace's spool folder (``.cairn/spool``)."""
    return workspace.state_dir / "spool"


def pending_dir(workspace) -> Path:
    """Where artifacts wait: ``.cairn/spool/artifacts``."""
    return spool_dir(workspace) / "artifacts"


def pending_files(workspace) -> list[Path]:
    """Records of artifacts waiting, oldest name first (one directory listing)."""
    try:
        with os.scandir(pending_dir(workspace)) as entries:
            return sorted(Path(e.path) for e in entries if e.name.endswith(".json"))
    except FileNotFoundError:
        return []


def save(workspace, store_url: str, root: str, run_id: str, kind: str, name: str,
         source: Path | bytes) -> Pending:
    """Copy ``source`` (a file, or bytes) to the spool and record it. ArtifactError when
    the copy cannot be written."""
    blobs = ArtifactStore(str(pending_dir(workspace)))
    sha256, size, _ = (blobs.put_bytes(source) if isinstance(source, bytes)
                       else blobs.put_file(source))
    pending = Pending(run_id, store_identity(store_url), root, kind, name, sha256, size,
                      time.time())
    path = pending_dir(workspace) / f"{run_id}.{uuid.uuid4().hex[:12]}.json"
    temp = path.with_name(path.name + ".tmp")
    try:
        with temp.open("w", encoding="utf-8") as fh:
            json.dump({"format": FORMAT, "version": VERSION, **pending.__dict__}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ArtifactError(name, f"cannot write the spool record {path}: {exc}") from exc
    return pending


def read(path: Path) -> Pending:
    """Parse a record; a malformed one raises :class:`SpoolError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} artifact spool record")
        return Pending(*(data[k] for k in Pending.__dataclass_fields__))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SpoolError(str(path), 1, f"unreadable record ({exc})") from None


# -- delivery --------------------------------------------------------------------------------


def deliver(workspace, store, *, run_id: str | None = None, note: bool = True) -> Delivery:
    """Store the spooled artifacts (of ``run_id`` only, if given) and record them on their
    runs; with ``note``, each run's warnings say what came late."""
    blobs = ArtifactStore(str(pending_dir(workspace)))
    targets: dict[str, ArtifactStore] = {}
    down: dict[str, str] = {}  # root -> why, after its first failure: don't wait on it again
    done, sent = Delivery(), set()
    here = store_identity(store.url)
    for path in pending_files(workspace):
        if run_id is not None and not path.name.startswith(f"{run_id}."):
            continue
        try:
            pending = _deliver_one(store, here, path, blobs, targets, down)
        except FileNotFoundError:
            continue  # another process delivered it meanwhile
        except BlockingIOError:
            done.busy.append(path)
        except (CairnError, OSError) as exc:
            done.failed.append((path, getattr(exc, "reason", None) or str(exc)))
        else:
            done.delivered.append(path)
            done.names[pending.run_id].append(pending.name)
            sent.add(pending.sha256)
    _sweep(workspace, blobs, sent)
    if note:
        _note(store, done.names)
    return done


def _deliver_one(store, here: str, path: Path, blobs: ArtifactStore,
                 targets: dict[str, ArtifactStore], down: dict[str, str]) -> Pending:
    with open(path, encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: someone else has it
        pending = read(path)
        if pending.store != here:
            raise SpoolError(str(path), 1, f"spooled for store {pending.store}, not {here}: "
                                           "deliver it with CAIRN_STORE set to that store")
        if pending.root in down:
            raise ArtifactError(pending.name, down[pending.root])
        target = targets.setdefault(pending.root, ArtifactStore(pending.root))
        try:
            sha256, size, uri = target.put_file(blobs.uri(pending.sha256))
        except ArtifactError as exc:
            down[pending.root] = exc.reason
            raise
        if sha256 != pending.sha256:
            raise ArtifactError(pending.name, f"the spooled copy {blobs.uri(pending.sha256)} "
                                              "does not match its sha256 (corrupted)")
        pk = store.resolve(pending.run_id)
        if pending.kind == "diff":
            store.update_run(pk, git_diff_sha256=sha256)
        else:
            store.add_artifact(pk, pending.name, sha256, size, uri, pending.created)
        path.unlink()
    return pending


def _sweep(workspace, blobs: ArtifactStore, sent: set[str]) -> None:
    """Remove the spooled blobs just delivered that no record waiting needs."""
    for path in pending_files(workspace) if sent else []:
        try:
            sent.discard(read(path).sha256)
        except (SpoolError, OSError):
            return  # keep everything while a record cannot be read
    for sha256 in sent:
        Path(blobs.uri(sha256)).unlink(missing_ok=True)


def _note(store, done: dict[str, list[str]]) -> None:
    when = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%d %H:%M UTC")
    for run_id, names in done.items():
        try:
            pk = store.resolve(run_id)
            record = store.get_run(pk)
            store.update_run(pk, warnings=[*record.warnings, _late(names, f"on {when}")])
        except CairnError as exc:
            log.warning("cairn: run %s: could not note the late artifacts: %s", run_id, exc)


def _late(names: list[str], when: str) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} artifacts stored late from the local spool {when}: {shown}"


# -- the run's side --------------------------------------------------------------------------


class Uploads:
    """A run's artifacts on their way to the store: stored now, or spooled and stored later."""

    def __init__(self, run, store, artifacts: ArtifactStore, workspace,
                 warn: Callable[[str], None]) -> None:
        self._run_id, self._pk = run.id, run._pk
        self._store, self._artifacts, self._workspace = store, artifacts, workspace
        self._warn = warn
        self._retry_at = 0.0  # monotonic time before which the store is not tried again
        self._why = ""
        self.spooled = 0
        if not artifacts.is_local:
            threading.Thread(target=artifacts.connect, daemon=True,
                             name=f"cairn-connect-{run.id[:8]}").start()

    def log(self, files: list[tuple[Path, str]]) -> list[ArtifactRecord]:
        """Store ``files`` (path, name) now or spool them; a file that cannot be read
        raises ArtifactError, nothing else does."""
        for path, _ in files:
            _check_readable(path)
        if time.monotonic() < self._retry_at:
            return self._spool(files, f"{self._why} (not retried before "
                                      f"{RETRY_AFTER_S:.0f} s have passed)")
        try:
            stored = self._artifacts.put_files([p for p, _ in files])
            created = time.time()
            records = [ArtifactRecord(name, *blob, created)
                       for (_, name), blob in zip(files, stored, strict=True)]
            self._store.add_artifacts(self._pk, [(r.name, r.sha256, r.size, r.uri, created)
                                                 for r in records])
        except (ArtifactError, StoreError) as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            self._why = exc.reason if isinstance(exc, ArtifactError) else f"the store: {exc}"
            return self._spool(files, self._why)
        return records

    def save_diff(self, diff: bytes, why: str) -> None:
        """Spool the run's uncommitted diff, which could not be stored at its start."""
        try:
            save(self._workspace, self._store.url, self._artifacts.root, self._run_id, "diff",
                 "uncommitted diff", diff)
        except ArtifactError as exc:
            self._warn(f"LOST the uncommitted diff: it could not be stored ({why}) nor "
                       f"spooled ({exc.reason})")
            return
        self._retry_at, self._why = time.monotonic() + RETRY_AFTER_S, why
        self.spooled += 1
        self._warn(f"could not store the uncommitted diff: {why}; {self._later()}")

    def _spool(self, files: list[tuple[Path, str]], why: str) -> list[ArtifactRecord]:
        records = []
        for path, name in files:
            try:
                p = save(self._workspace, self._store.url, self._artifacts.root, self._run_id,
                         "artifact", name, path)
            except ArtifactError as exc:
                self._warn(f"LOST artifact {name!r}: it could not be stored ({why}) nor "
                           f"spooled ({exc.reason})")
                continue
            uri = ArtifactStore(str(pending_dir(self._workspace))).uri(p.sha256)
            records.append(ArtifactRecord(name, p.sha256, p.size, uri, p.created))
        self.spooled += len(records)
        if records:
            what = (f"artifact {records[0].name!r}" if len(records) == 1
                    else f"{len(records)} artifacts ({records[0].name}, ...)")
            self._warn(f"could not store {what}: {why}; {self._later()}")
        return records

    def _later(self) -> str:
        return (f"saved to {pending_dir(self._workspace)}; stored when the artifact store takes "
                "it: at the run's end, by the next run started in this workspace, or by "
                "`cairn runs deliver`")

    def finish(self) -> None:
        """At the run's end: store what this run spooled (one try); never raises."""
        if not self.spooled:
            return
        try:
            report = deliver(self._workspace, self._store, run_id=self._run_id, note=False)
        except Exception as exc:  # the run is ending: the files stay for a later delivery
            self._warn(f"spooled artifacts not delivered at the run's end: {exc}")
            return
        if report.names:
            self._warn(_late(report.names[self._run_id], "at the run's end"))
        left = len(report.failed) + len(report.busy)
        if left:
            why = report.failed[0][1] if report.failed else "being delivered by another process"
            self._warn(f"{left} spooled artifacts still wait in {pending_dir(self._workspace)} "
                       f"({why}); they are stored by the next run started in this workspace or "
                       "by `cairn runs deliver`")
        self.spooled = left


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ArtifactError(os.fspath(path), f"cannot read: {exc.strerror or exc}") from exc
