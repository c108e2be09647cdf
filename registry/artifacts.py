"""Content-addressed artifact store: files kept once, under their sha256, at any fsspec URL.

Layout under the root: ``sha256/ab/cdef...`` (the first two hex digits fan out folders).
The logical artifact name a run gives (``plots/confusion.png``) is only a label in the
registry, never a path on disk, so no name can write outside the root; a digest that is not
64 lower-case hex digits is refused before it becomes a path.

A local blob is written once: copied (and hashed on the way) to a temporary file in the root,
synced, then renamed to its digest. A full disk leaves neither the temporary file nor half a
blob behind and raises :class:`~registry.errors.ArtifactError` saying so.

On an object store (``s3://bucket/prefix``, through s3fs: ``pip install 'cairn[s3]'``) the
endpoint, region and credentials come from the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``~/.aws``), so AWS, MinIO and Ceph all work. A blob
is hashed locally, then sent whole to its digest's key: one PUT, or a multipart upload that S3
makes visible only once complete, so a failed upload leaves nothing under the digest. Several
files go at once, each hashed while the previous ones go up (:meth:`ArtifactStore.put_files`,
:mod:`registry._s3`). Every failure (no s3fs, unreachable endpoint, missing bucket, refused
credentials) is an ``ArtifactError`` naming the URL.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import re
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

from registry import _s3
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
    """Blobs under a root URL (a local folder or any fsspec URL such as ``s3://bucket/x``).

    ``part_size``: the part size of multipart uploads to an object store (s3fs's default,
    50 MiB, when None; S3 wants at least 5 MiB)."""

    def __init__(self, root: str, *, part_size: int | None = None) -> None:
        self.root = root.rstrip("/")
        self._local = "://" not in root or root.startswith("file://")
        if self._local:
            self.root = str(Path(root.removeprefix("file://")).resolve())
        self._fs = None
        self._lock = threading.Lock()
        self._put_options = {"chunksize": part_size} if part_size else {}

    @property
    def is_local(self) -> bool:
        """Whether the root is a local folder."""
        return self._local

    def uri(self, sha256: str) -> str:
        """Where the blob with this digest lives."""
        sha256 = check_sha256(sha256)
        rel = f"sha256/{sha256[:2]}/{sha256[2:]}"
        return os.path.join(self.root, *rel.split("/")) if self._local else f"{self.root}/{rel}"

    def put_file(self, path: str | os.PathLike) -> tuple[str, int, str]:
        """Store a local file; returns (sha256, size, uri). Storing the same bytes twice is free."""
        return self.put_files([path])[0]

    def put_files(self, paths: list[str | os.PathLike]) -> list[tuple[str, int, str]]:
        """Store local files (at once, on an object store: each hashed while the previous
        ones go up); (sha256, size, uri) for each. On an error none of them counts as
        stored, though some may be."""
        if not self._local:
            return self._put_remote([os.fspath(p) for p in paths])
        return [self._put_local_file(os.fspath(p)) for p in paths]

    def put_bytes(self, data: bytes) -> tuple[str, int, str]:
        """Store bytes; returns (sha256, size, uri)."""
        if self._local:
            return self._put_local(io.BytesIO(data), "<bytes>")
        sha256 = hashlib.sha256(data).hexdigest()
        uri = self.uri(sha256)
        try:
            fs = self._filesystem()
            if len(data) < _s3.ASK_FIRST or not _s3.holds(fs, uri, len(data)):
                fs.pipe_file(uri, data)
        except ArtifactError:
            raise
        except Exception as exc:  # each fsspec backend raises its own
            raise _s3.remote_error("<bytes>", uri, exc) from exc
        return sha256, len(data), uri

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        uri = self.uri(sha256)
        try:
            return open(uri, "rb") if self._local else self._filesystem().open(uri, "rb")
        except ArtifactError:
            raise
        except FileNotFoundError as exc:
            raise ArtifactError(sha256, f"no blob at {uri}") from exc
        except OSError as exc:
            if not self._local:
                raise _s3.remote_error(sha256, uri, exc, "cannot read") from exc
            raise ArtifactError(sha256, f"cannot read {uri}: {exc.strerror or exc}") from exc
        except Exception as exc:  # each fsspec backend raises its own
            raise _s3.remote_error(sha256, uri, exc, "cannot read") from exc

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
            raise ArtifactError(sha256, f"cannot read the blob at {self.uri(sha256)}: "
                                        f"{getattr(cause, 'strerror', None) or cause}") from cause
        except OSError as exc:
            raise self._store_error(sha256, os.fspath(dest), exc, what="cannot write") from exc
        finally:
            _remove(tmp)
        return dest

    def _put_local_file(self, where: str) -> tuple[str, int, str]:
        try:
            src = open(where, "rb")  # noqa: SIM115 (closed below, after the copy)
        except OSError as exc:
            raise ArtifactError(where, f"cannot read: {exc.strerror or exc}") from exc
        with src:
            return self._put_local(src, where)

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
            raise ArtifactError(where, f"cannot read: {getattr(cause, 'strerror', None) or cause}"
                                ) from cause
        except OSError as exc:
            raise self._store_error(where, self.root, exc) from exc
        finally:
            _remove(tmp)
        return sha256, size, uri

    def _put_remote(self, wheres: list[str]) -> list[tuple[str, int, str]]:
        fs, stored = self._filesystem(), []
        one_put = 2 * self._put_options["chunksize"] if self._put_options else _s3.ONE_PUT

        def hashed():  # pulled by put_all one file at a time, while earlier files go up
            for where in wheres:
                sha256, size, data = _hash_file(where, one_put)
                stored.append((sha256, size, self.uri(sha256)))
                yield _s3.Blob(where, stored[-1][2], size, data)

        _s3.put_all(fs, hashed(), self._put_options)
        return stored

    def _store_error(self, where: str, target: str, exc: OSError,
                     what: str = "cannot store") -> ArtifactError:
        if exc.errno in _FULL:
            return ArtifactError(where, f"{what} at {target}: the disk {_FULL[exc.errno]}; "
                                        "nothing was left there: free space and try again")
        return ArtifactError(where, f"{what} at {target}: {exc.strerror or exc}")

    def connect(self) -> None:
        """Set up the object store's client now and make one request (a run does it in the
        background as it starts, so that its first artifact does not wait for it); never
        raises: a failure surfaces at the first use."""
        if self._local:
            return
        with contextlib.suppress(Exception):  # warm_up itself never raises
            _s3.warm_up(self._filesystem(), self.root)

    def _filesystem(self):
        with self._lock:
            return self._make_filesystem()

    def _make_filesystem(self):
        if self._fs is None:
            try:
                import fsspec

                self._fs = fsspec.core.url_to_fs(self.root, **_s3.options(self.root))[0]
            except ImportError as exc:
                extra = " (pip install 'cairn[s3]')" if self.root.startswith("s3") else ""
                raise ArtifactError(self.root, f"cannot reach the artifact store: {exc}"
                                               f"{extra}") from exc
            except (ValueError, TypeError) as exc:
                raise ArtifactError(self.root, f"not a usable artifact root: {exc}") from exc
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
            except Exception as exc:  # an object store fails in its own way
                raise _ReadError() from exc
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())  # a full disk can surface only here (delayed allocation)
    return digest.hexdigest(), size


def _hash_file(where: str, whole: int) -> tuple[str, int, bytes | None]:
    """sha256 and size of a local file, and its bytes if it has fewer than ``whole``."""
    try:
        if os.path.getsize(where) >= whole:
            return (*file_sha256(where), None)
        with open(where, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ArtifactError(where, f"cannot read: {exc.strerror or exc}") from exc
    return hashlib.sha256(data).hexdigest(), len(data), data


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
