"""Content-addressed artifact store: files kept once, under their sha256, at any fsspec URL.

Layout under the root: ``sha256/ab/cdef...`` (the first two hex digits fan out folders).
The logical artifact name a run gives (``plots/confusion.png``) is only a label in the
registry, never a path on disk, so no name can write outside the root; a digest that is not
64 lower-case hex digits is refused before it becomes a path.

A local blob is written once: copied (and hashed on the way) to a temporary file in the root,
synced, then renamed to its digest. A full disk leaves neither the temporary file nor half a
blob behind and raises :class:`~registry.errors.ArtifactError` saying so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import re
import uuid
from pathlib import Path
from typing import BinaryIO

from registry.errors import ArtifactError
from registry.text import is_utf8

__all__ = ["MAX_NAME_LENGTH", "ArtifactStore", "check_sha256", "clean_name", "file_sha256"]

_CHUNK = 1 << 20
MAX_NAME_LENGTH = 1000  # the registry's artifact.name column
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FULL = {errno.ENOSPC: "is full (no space left on device)",
         errno.EDQUOT: "is over its disk quota"}


def file_sha256(path: str | os.PathLike) -> tuple[str, int]:
    """sha256 hex digest and size of a local file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def clean_name(name: str) -> str:
    """A normalised artifact name: relative, forward slashes, no '..' or empty parts,
    printable UTF-8 text of at most :data:`MAX_NAME_LENGTH` characters."""
    if not isinstance(name, str) or not name.strip():
        raise ArtifactError(str(name), "artifact names must be non-empty text")
    if "\x00" in name:
        raise ArtifactError(name, "artifact names cannot contain NUL")
    if not is_utf8(name) or not name.isprintable():
        raise ArtifactError(name, "artifact names must be printable, valid UTF-8 text "
                                  "(no control or format characters)")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ArtifactError(name, "artifact names must be relative paths without '..'")
    cleaned = "/".join(parts)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ArtifactError(name[:80] + "...", f"artifact names are at most "
                                               f"{MAX_NAME_LENGTH} characters, not {len(cleaned)}")
    return cleaned


def check_sha256(digest: str) -> str:
    """``digest`` if it is a sha256 hex digest (64 lower-case hex digits), else ArtifactError."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ArtifactError(str(digest)[:80], "not a sha256 digest (64 lower-case hex digits)")
    return digest


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
        sha256 = check_sha256(sha256)
        rel = f"sha256/{sha256[:2]}/{sha256[2:]}"
        return os.path.join(self.root, *rel.split("/")) if self._local else f"{self.root}/{rel}"

    def put_file(self, path: str | os.PathLike) -> tuple[str, int, str]:
        """Store a local file; returns (sha256, size, uri). Storing the same bytes twice is free."""
        where = os.fspath(path)
        if not self._local:
            return self._put_remote(where)
        try:
            src = open(path, "rb")  # noqa: SIM115 (closed below, after the copy)
        except OSError as exc:
            raise ArtifactError(where, f"cannot read: {exc.strerror or exc}") from exc
        with src:
            return self._put_local(src, where)

    def put_bytes(self, data: bytes) -> tuple[str, int, str]:
        """Store bytes; returns (sha256, size, uri)."""
        if self._local:
            return self._put_local(io.BytesIO(data), "<bytes>")
        sha256 = hashlib.sha256(data).hexdigest()
        uri = self.uri(sha256)
        try:
            if not self._filesystem().exists(uri):
                self._filesystem().pipe_file(uri, data)
        except OSError as exc:
            raise self._store_error("<bytes>", uri, exc) from exc
        return sha256, len(data), uri

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        uri = self.uri(sha256)
        try:
            return open(uri, "rb") if self._local else self._filesystem().open(uri, "rb")
        except FileNotFoundError as exc:
            raise ArtifactError(sha256, f"no blob at {uri}") from exc
        except OSError as exc:
            raise ArtifactError(sha256, f"cannot read {uri}: {exc.strerror or exc}") from exc

    def get(self, sha256: str, dest: str | os.PathLike) -> Path:
        """Copy a blob to ``dest``, checking its digest on the way. Written to a temporary
        file beside ``dest`` and renamed: a failed copy (full disk, corrupted blob) leaves
        nothing at ``dest``."""
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            with self.open(sha256) as src:
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = _copy(src, tmp)[0]
            if digest != sha256:
                raise ArtifactError(sha256, "stored blob does not match its sha256 (corrupted)")
            os.replace(tmp, dest)
        except _ReadError as exc:
            cause = exc.__cause__
            raise ArtifactError(sha256, f"cannot read the blob: {cause.strerror or cause}"
                                ) from cause
        except OSError as exc:
            raise self._store_error(sha256, os.fspath(dest), exc, what="cannot write") from exc
        finally:
            _remove(tmp)
        return dest

    def _put_local(self, src: BinaryIO, where: str) -> tuple[str, int, str]:
        # Copy to a unique temporary name in the root while hashing, then rename: readers
        # never see half a blob, two processes storing the same file at once both succeed,
        # and the file is read once (bytes that change while being read still match the name).
        tmp = os.path.join(self.root, f".incoming-{uuid.uuid4().hex}.tmp")
        try:
            os.makedirs(self.root, exist_ok=True)
            sha256, size = _copy(src, tmp)
            uri = self.uri(sha256)
            if not _holds(uri, size):
                os.makedirs(os.path.dirname(uri), exist_ok=True)
                os.replace(tmp, uri)
        except _ReadError as exc:
            cause = exc.__cause__
            raise ArtifactError(where, f"cannot read: {cause.strerror or cause}") from cause
        except OSError as exc:
            raise self._store_error(where, self.root, exc) from exc
        finally:
            _remove(tmp)
        return sha256, size, uri

    def _put_remote(self, where: str) -> tuple[str, int, str]:
        try:
            sha256, size = file_sha256(where)
        except OSError as exc:
            raise ArtifactError(where, f"cannot read: {exc.strerror or exc}") from exc
        uri = self.uri(sha256)
        try:
            if not self._filesystem().exists(uri):
                self._filesystem().put_file(where, uri)
        except OSError as exc:
            raise self._store_error(where, uri, exc) from exc
        return sha256, size, uri

    def _store_error(self, where: str, target: str, exc: OSError,
                     what: str = "cannot store") -> ArtifactError:
        if exc.errno in _FULL:
            return ArtifactError(where, f"{what} at {target}: the disk {_FULL[exc.errno]}; "
                                        "nothing was left there: free space and try again")
        return ArtifactError(where, f"{what} at {target}: {exc.strerror or exc}")

    def _filesystem(self):
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.root)[0]
        return self._fs


class _ReadError(Exception):
    """Reading the source failed (as opposed to writing the copy)."""


def _copy(src: BinaryIO, tmp: str | os.PathLike) -> tuple[str, int]:
    """Copy ``src`` to a new file ``tmp``, synced to disk; its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    with open(tmp, "xb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except OSError as exc:
                raise _ReadError() from exc
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())  # a full disk can surface only here (delayed allocation)
    return digest.hexdigest(), size


def _holds(uri: str, size: int) -> bool:
    """Whether a complete blob is already stored at ``uri`` (same name, same size)."""
    try:
        return os.path.getsize(uri) == size
    except OSError:
        return False


def _remove(path: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def join_name(*parts: str) -> str:
    """Join artifact name parts with forward slashes."""
    return clean_name(posixpath.join(*parts))
