"""Content-addressed artifact store: files kept once, under their sha256, at any fsspec URL.

Layout under the root: ``sha256/ab/cdef...`` (the first two hex digits fan out folders).
The logical artifact name a run gives (``plots/confusion.png``) is only a label in the
registry, never a path on disk, so no name can write outside the root.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from registry.errors import ArtifactError

__all__ = ["ArtifactStore", "clean_name", "file_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> tuple[str, int]:
    """sha256 hex digest and size of a local file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def clean_name(name: str) -> str:
    """A normalised artifact name: relative, forward slashes, no '..' or empty parts."""
    if not isinstance(name, str) or not name.strip():
        raise ArtifactError(str(name), "artifact names must be non-empty text")
    if "\x00" in name:
        raise ArtifactError(name, "artifact names cannot contain NUL")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if not parts or ".." in parts:
        raise ArtifactError(name, "artifact names must be relative paths without '..'")
    return "/".join(parts)


class ArtifactStore:
    """Blobs under a root URL (a local folder or any fsspec URL such as ``s3://bucket/x``)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._local = "://" not in root or root.startswith("file://")
        if self._local:
            self.root = str(Path(root.removeprefix("file://")).resolve())
        self._fs = None

    def uri(self, sha256: str) -> str:
        """Where the blob with this digest lives."""
        rel = f"sha256/{sha256[:2]}/{sha256[2:]}"
        return os.path.join(self.root, *rel.split("/")) if self._local else f"{self.root}/{rel}"

    def put_file(self, path: str | os.PathLike) -> tuple[str, int, str]:
        """Store a local file; returns (sha256, size, uri). Storing the same bytes twice is free."""
        try:
            sha256, size = file_sha256(path)
        except OSError as exc:
            raise ArtifactError(os.fspath(path), f"cannot read: {exc.strerror or exc}") from exc
        uri = self.uri(sha256)
        try:
            if self._local:
                _put_local(path, uri)
            elif not self._filesystem().exists(uri):
                self._filesystem().put_file(os.fspath(path), uri)
        except OSError as exc:
            raise ArtifactError(os.fspath(path), f"cannot store at {uri}: {exc}") from exc
        return sha256, size, uri

    def put_bytes(self, data: bytes) -> tuple[str, int, str]:
        """Store bytes; returns (sha256, size, uri)."""
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(tmp.name)
        finally:
            os.unlink(tmp.name)

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        uri = self.uri(sha256)
        try:
            return open(uri, "rb") if self._local else self._filesystem().open(uri, "rb")
        except FileNotFoundError as exc:
            raise ArtifactError(sha256, f"no blob at {uri}") from exc

    def get(self, sha256: str, dest: str | os.PathLike) -> Path:
        """Copy a blob to ``dest``, checking its digest on the way."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with self.open(sha256) as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            dest.unlink()
            raise ArtifactError(sha256, "stored blob does not match its sha256 (corrupted)")
        return dest

    def _filesystem(self):
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.root)[0]
        return self._fs


def _put_local(src: str | os.PathLike, uri: str) -> None:
    if os.path.exists(uri):
        return
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    # Copy to a unique temporary name, then rename: readers never see half a blob and
    # two processes storing the same file at once both succeed.
    tmp = f"{uri}.{uuid.uuid4().hex}.tmp"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, uri)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def join_name(*parts: str) -> str:
    """Join artifact name parts with forward slashes."""
    return clean_name(posixpath.join(*parts))
