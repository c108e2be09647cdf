"""Where a model's pretrained weights came from: recorded on every run that starts from them.

The sha256 is the hub's own digest where the file sits in the Hugging Face cache (its blob is
named by it, and a download is checked against it), else it is computed once and kept in a
``<path>.cairn.json`` sidecar beside the file or SavedModel folder (in the team's folder and
the caches; a user's own ``weights=FILE`` is hashed once per process instead), trusted while
the file's size and modification time are unchanged. A folder's digest is the sha256 of its files'
relative paths and sha256s, sorted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["PARAM_PREFIX", "WeightsProvenance", "file_sha256", "of_hf_cache", "of_path",
           "remember"]

PARAM_PREFIX = "base_weights"
SIDECAR = ".cairn.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MEMO: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightsProvenance:
    """The pretrained weights a model was built from.

    ``source`` is ``hf-hub`` (a Hugging Face repository or mirror), ``tfhub`` (a TF Hub or
    Kaggle handle), ``url`` (a published download), ``team-folder`` (a file someone put in
    the team's weights folder) or ``file`` (``weights=PATH``). ``location`` is where it was
    read on this machine; it is not recorded as a param, so runs on different machines that
    used the same weights still match.
    """

    source: str
    sha256: str
    size: int
    file: str
    repo_id: str | None = None
    revision: str | None = None
    location: str | None = None

    def params(self) -> dict[str, Any]:
        """The run params ``base_weights.source``, ``.repo``, ``.revision``, ``.file``,
        ``.size`` and ``.sha256`` (None values left out)."""
        values = {"source": self.source, "repo": self.repo_id, "revision": self.revision,
                  "file": self.file, "size": self.size, "sha256": self.sha256}
        return {f"{PARAM_PREFIX}.{k}": v for k, v in values.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain values, ready for JSON."""
        return asdict(self)

    @classmethod
    def of_file(cls, path: str | os.PathLike) -> WeightsProvenance:
        """A local weights file's provenance (source ``file``): its sha256 and size."""
        return of_path(Path(path), "file")


def of_hf_cache(path: Path, repo_id: str) -> WeightsProvenance:
    """Provenance of ``snapshots/<commit>/<file>`` in a Hugging Face cache repository."""
    parts = path.parts
    at = len(parts) - 1 - parts[::-1].index("snapshots")
    commit, filename = parts[at + 1], "/".join(parts[at + 2:])
    blob = Path(os.path.realpath(path))
    digest = blob.name if _HEX64.fullmatch(blob.name) else _digest(blob, *_signature(blob))
    return WeightsProvenance(source="hf-hub", sha256=digest, size=blob.stat().st_size,
                             file=filename, repo_id=repo_id, revision=commit,
                             location=str(path))


def of_path(path: Path, source: str, repo_id: str | None = None,
            revision: str | None = None) -> WeightsProvenance:
    """Provenance of a local file or SavedModel folder. Its sidecar (what ``cairn zoo pull``
    wrote: repository and revision included) is trusted while size and modification time
    are unchanged; otherwise the digest is computed, and the sidecar still applies when the
    content is the same (a copied folder has new times)."""
    size, mtime = _signature(path)
    stored = _read_sidecar(path)
    if stored is not None and (stored.get("size"), stored.get("mtime_ns")) == (size, mtime):
        return _from_sidecar(stored, path, size, source, repo_id, revision)
    digest = _digest(path, size, mtime)
    if stored is not None and stored["sha256"] == digest:
        found = _from_sidecar(stored, path, size, source, repo_id, revision)
    else:
        found = WeightsProvenance(source=source, sha256=digest, size=size, file=path.name,
                                  repo_id=repo_id, revision=revision, location=str(path))
    if source != "file":  # a user's own weights=FILE gets no file beside it (memo only)
        remember(path, found)
    return found


def _from_sidecar(stored: dict[str, Any], path: Path, size: int, source: str,
                  repo_id: str | None, revision: str | None) -> WeightsProvenance:
    return WeightsProvenance(source=stored.get("source") or source,
                             sha256=str(stored["sha256"]), size=size,
                             file=stored.get("file") or path.name,
                             repo_id=stored.get("repo_id") or repo_id,
                             revision=stored.get("revision") or revision, location=str(path))


def remember(path: Path, provenance: WeightsProvenance) -> None:
    """Write the sidecar of ``path`` (best effort: a read-only folder is not an error)."""
    size, mtime = _signature(path)
    doc = {**asdict(replace(provenance, location=None)), "size": size, "mtime_ns": mtime}
    with contextlib.suppress(OSError):
        _sidecar(path).write_text(json.dumps(doc, indent=2), encoding="utf-8")


def file_sha256(path: Path) -> str:
    """sha256 of a file, hashed from a read-only memory map (no copies through Python)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return hashlib.sha256(view).hexdigest()


def _digest(path: Path, size: int, mtime: int) -> str:
    key = (str(path), size, mtime)
    if key not in _MEMO:
        _MEMO[key] = file_sha256(path) if path.is_file() else _tree_sha256(path)
    return _MEMO[key]


def _tree_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _signature(path: Path) -> tuple[int, int]:
    """(size, newest mtime in ns) of a file, or summed over a folder's files."""
    if path.is_file():
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    stats = [p.stat() for p in path.rglob("*") if p.is_file()]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and _HEX64.fullmatch(str(doc.get("sha256"))) else None
