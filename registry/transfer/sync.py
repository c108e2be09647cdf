"""``cairn sync``: send the runs, MoV measurements and artifacts another store lacks.

An air-gapped node records into its own SQLite store and artifact folder; later
``cairn sync --to URL`` brings the team store up to date (``--from URL`` the other way).
Built on the lossless backup records (:mod:`registry.transfer.backup`):

- **Incremental and idempotent.** Both stores' run signatures (:mod:`registry.store.sync`)
  are compared; only runs missing or different are read and sent, so a second sync sends
  nothing. Each run lands in one transaction, so an interrupted sync resumes where it stopped,
  and two nodes sending the same run at once store it once.
- **Artifacts.** With ``artifacts_to`` (the team's artifact root, ``s3://...`` or a folder)
  each blob the destination lacks is copied there and the run refers to the copy; without it
  the runs keep their URIs, and those on this machine's disk are named in the warnings.
- **Conflicts** (the same run changed on both sides): what was recorded (status, metric
  points, params, data, artifacts) comes from the side that recorded more points, ties going
  to the source; what people edit is merged: tags are united, notes are kept whole when one
  side's notes extend the other's (notes are appended to), and otherwise a field that differs
  keeps the destination's value. Every field so kept is reported.
- Runs sent are tagged ``cairn.synced_from`` (host and store) once, so the "has this been
  tried?" warning on the team store can say a match came from an offline node.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.artifacts import ArtifactStore
from registry.errors import ArtifactError, CairnError, StoreError
from registry.store import SqlStore, safe_url
from registry.store.sync import SYNCED_FROM, Signature, signatures
from registry.transfer._mov import MovImport, export_mov, import_mov
from registry.transfer.backup import export_runs, import_runs

__all__ = ["SyncResult", "origin_of", "sync_stores"]

_EDITED = ("name", "question", "conclusion")


@dataclass
class SyncResult:
    """What one sync did, by run id."""

    source: str
    destination: str
    sent: list[str] = field(default_factory=list)  # new at the destination
    updated: list[str] = field(default_factory=list)  # changed since the last sync
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)  # values the rule kept, explained
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    blobs: int = 0  # artifact files copied
    blob_bytes: int = 0
    mov: MovImport = field(default_factory=MovImport)

    def summary(self) -> str:
        return (f"{self.source} -> {self.destination}: {len(self.sent)} runs sent, "
                f"{len(self.updated)} updated, {self.unchanged} unchanged, "
                f"{len(self.failed)} failed; {self.blobs} artifact files copied "
                f"({self.blob_bytes:,} bytes); {self.mov.measurements} MoV measurements added")


def origin_of(store: SqlStore) -> str:
    """How a store's runs are labelled where they are synced to: ``host:store``."""
    return f"{socket.gethostname()}:{safe_url(store.url)}"


def sync_stores(source: SqlStore, dest: SqlStore, *, dest_blobs: ArtifactStore | None = None,
                origin: str | None = None,
                progress: Callable[[str, str], None] | None = None) -> SyncResult:
    """Send ``source``'s runs and MoV measurements that ``dest`` lacks or holds in another
    version; see the module doc for the rules."""
    result = SyncResult(safe_url(source.url), safe_url(dest.url))
    sender = _Sender(source, dest, dest_blobs, origin or origin_of(source), result)
    theirs = signatures(dest)
    for run_id, ours in signatures(source).items():
        outcome = sender.send(run_id, ours, theirs.get(run_id))
        if progress:
            progress(run_id, outcome)
    result.mov, errors = _send_mov(source, dest)
    result.warnings.extend(f"MoV: {e}" for e in errors)
    return result


def _send_mov(source: SqlStore, dest: SqlStore) -> tuple[MovImport, list]:
    """The MoV definitions and measurements ``dest`` lacks. A definition another node
    creates at the same moment fails ours once; the second try finds it."""
    records = list(enumerate(export_mov(source), 1))

    def send() -> tuple[MovImport, list]:
        errors: list = []
        return import_mov(dest, records, replace=False, errors=errors), errors

    try:
        return send()
    except StoreError:
        return send()


class _Sender:
    def __init__(self, source: SqlStore, dest: SqlStore, dest_blobs: ArtifactStore | None,
                 origin: str, result: SyncResult) -> None:
        self.source, self.dest, self.result, self.origin = source, dest, result, origin
        self.dest_blobs = dest_blobs
        self._copied: set[str] = set()

    def send(self, run_id: str, ours: Signature, theirs: Signature | None) -> str:
        if theirs == ours:
            self.result.unchanged += 1
            return "unchanged"
        try:
            return self._send(run_id, ours, theirs)
        except (CairnError, OSError) as exc:  # one run's failure must not stop the others
            self.result.failed[run_id] = str(exc)
            return "failed"

    def _send(self, run_id: str, ours: Signature, theirs: Signature | None) -> str:
        data = next(export_runs(self.source, [self.source.resolve(run_id)]))
        data["tags"].setdefault(SYNCED_FROM, self.origin)
        if theirs is not None and not self._merge(data, ours, theirs):
            self.result.unchanged += 1
            return "unchanged"
        self._move_artifacts(data)
        try:
            outcome = import_runs(self.dest, [json.dumps(data, allow_nan=False)],
                                  replace=theirs is not None)
        except StoreError:
            if theirs is None and self.dest.key_of(run_id) is not None:
                self.result.unchanged += 1  # another node sent it at the same moment
                return "unchanged"
            raise
        if outcome.errors:
            raise CairnError(str(outcome.errors[0]))
        if outcome.skipped:  # another node sent it between our look and our write
            self.result.unchanged += 1
            return "unchanged"
        (self.result.updated if theirs is not None else self.result.sent).append(run_id)
        return "updated" if theirs is not None else "sent"

    def _merge(self, data: dict[str, Any], ours: Signature, theirs: Signature) -> bool:
        """Fold the destination's edits into ``data`` (see the module doc); False when the
        destination already holds the result."""
        held = self.dest.get_run(data["id"])
        if theirs.points > ours.points:
            self._kept(data["id"], f"the destination recorded more ({theirs.points} metric "
                                   f"points, here {ours.points}): its run is kept")
            return False
        tags = dict(data["tags"])
        for key, value in held.tags.items():
            if key in tags and tags[key] != value and key != SYNCED_FROM:
                self._kept(data["id"], f"tag {key}: kept {value!r} (here {tags[key]!r})")
            tags[key] = value if key != SYNCED_FROM else tags.get(key, value)
        data["tags"] = tags
        data["notes"] = self._notes(data["id"], data.get("notes"), held.notes)
        for name in _EDITED:
            mine, kept = data.get(name), getattr(held, name)
            if kept not in (None, "") and mine != kept:
                if mine not in (None, ""):
                    self._kept(data["id"], f"{name}: kept {kept!r} (here {mine!r})")
                data[name] = kept
        return ours.recorded != theirs.recorded or not _same_edits(data, held)

    def _notes(self, run_id: str, mine: str | None, kept: str | None) -> str | None:
        mine, kept = mine or "", kept or ""
        if mine.startswith(kept):
            return mine or None
        if not kept.startswith(mine):
            self._kept(run_id, "notes: kept the destination's (both sides wrote different notes)")
        return kept or None

    def _kept(self, run_id: str, what: str) -> None:
        self.result.conflicts.append(f"run {run_id[:8]}: {what}")

    def _move_artifacts(self, data: dict[str, Any]) -> None:
        for a in data.get("artifacts", []):
            if not a["sha256"]:
                continue  # a reference kept elsewhere (an MLflow file too large to copy)
            if self.dest_blobs is None:
                if "://" not in a["uri"]:
                    self.result.warnings.append(
                        f"run {data['id'][:8]}: artifact {a['name']!r} stays on this machine "
                        f"({a['uri']}): give --artifacts-to to copy it")
                continue
            self._copy_blob(a)
            a["uri"] = self.dest_blobs.uri(a["sha256"])

    def _copy_blob(self, a: dict[str, Any]) -> None:
        """Copy one artifact's bytes from where the source refers to them (its own folder,
        S3, ...) into the destination's store, checked against the recorded digest."""
        sha256 = a["sha256"]
        if sha256 in self._copied or _holds(self.dest_blobs, sha256):
            self._copied.add(sha256)
            return
        with tempfile.TemporaryDirectory(prefix="cairn-sync-") as tmp:
            local = Path(tmp, "blob")
            _fetch(a["uri"], local)
            stored, size, _ = self.dest_blobs.put_file(local)
        if stored != sha256:
            raise ArtifactError(a["uri"], f"its bytes (sha256 {stored}) are not the recorded "
                                          f"artifact's ({sha256})")
        self._copied.add(sha256)
        self.result.blobs += 1
        self.result.blob_bytes += size


def _fetch(uri: str, dest: Path) -> None:
    try:
        if "://" not in uri or uri.startswith("file://"):
            shutil.copyfile(uri.removeprefix("file://"), dest)
            return
        import fsspec

        with fsspec.open(uri, "rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 4 * 2**20)
    except (OSError, ImportError, ValueError) as exc:
        raise ArtifactError(uri, f"cannot read it to copy: {exc}") from exc


def _holds(blobs: ArtifactStore, sha256: str) -> bool:
    try:
        blobs.open(sha256).close()
    except ArtifactError:
        return False
    return True


def _same_edits(data: dict[str, Any], held: Any) -> bool:
    tags = {k: v for k, v in data["tags"].items() if k != SYNCED_FROM}
    ours = {k: v for k, v in held.tags.items() if k != SYNCED_FROM}
    return tags == ours and all(data.get(n) == getattr(held, n) for n in (*_EDITED, "notes"))
