"""The object-store side of the artifact store: client options, uploads, errors.

Uploads are pipelined: the caller hashes file N+1 (hashlib releases the GIL) while file N goes
up on fsspec's event loop, at most :data:`IN_FLIGHT` files at once. A file of at least
:data:`ASK_FIRST` bytes is sent only if a HEAD (one request, made concurrently with the other
uploads) does not find a complete blob under its digest. The bytes read for sending are
bounded (:data:`IN_MEMORY`), so a folder of large checkpoints does not fill the memory of
the training process that logs it. Each blob goes straight to its final
key in one PUT or one multipart upload, which S3 makes visible only once complete, so a failure
leaves nothing under a digest. A file sent in one PUT is read once: the bytes hashed are the
bytes sent, even if the file changes meanwhile; a bigger one is read again as it goes up.

Hashing while uploading to a temporary key, then copying it to the digest's key, was measured
and rejected: the copy of 16 MiB took 77 ms on moto (median; hashing it: 11 ms, a HEAD: 7 ms),
S3 charges a copy and a delete per blob and copies in one request only up to 5 GiB (a multipart
copy above), and a blob the store holds would be sent again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from registry.errors import ArtifactError

__all__ = ["ASK_FIRST", "IN_FLIGHT", "IN_MEMORY", "ONE_PUT", "Blob", "holds", "options",
           "put_all", "remote_error", "warm_up"]

# Above this size, ask whether the store holds a blob before sending it: a HEAD costs a round
# trip, as much as sending a small file again (same name, same bytes: harmless).
ASK_FIRST = 8 << 20
IN_FLIGHT = 10  # files going up at once: as many as botocore pools connections
IN_MEMORY = 256 << 20  # bytes of files read for sending, held at once (a training process's)
ONE_PUT = 100 << 20  # s3fs sends a file under two parts (50 MiB each by default) in one PUT
# Fail fast on an endpoint that does not answer (botocore waits 60 s per attempt by default).
_CONFIG = {"connect_timeout": 10}
# botocore's default ("legacy", 5 attempts) waits about 8 s on a refused connection; the AWS
# SDKs' standard mode (3 attempts, jittered backoff, a retry quota) about 1 s. s3fs retries
# timeouts and SlowDown on top, and an artifact that still fails is spooled and sent later.
_RETRIES = {"mode": "standard", "total_max_attempts": 3}


class Blob(NamedTuple):
    """A local file on its way to ``uri``: its bytes as hashed, or None to read it again."""

    where: str
    uri: str
    size: int
    data: bytes | None = None


def options(root: str) -> dict:
    """fsspec options for ``root``: for S3, an uncached client (on a session of its own that
    shares botocore's parsed service models) with AWS_ENDPOINT_URL (older botocore ignores
    the variable), a bounded connect timeout and the standard retry mode unless the user's
    AWS settings choose one (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, or ``retry_mode`` /
    ``max_attempts`` in the profile)."""
    if not root.startswith(("s3://", "s3a://")):
        return {}
    result: dict = {"skip_instance_cache": True, "config_kwargs": dict(_CONFIG)}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        result["client_kwargs"] = {"endpoint_url": endpoint}
    with contextlib.suppress(ImportError):  # no aiobotocore: s3fs is missing too, and says so
        result["session"] = _session()
        if not _user_retries(result["session"]):
            result["config_kwargs"]["retries"] = dict(_RETRIES)
    return result


def _session():
    """A new aiobotocore session (its own credentials and settings, read now) with the
    process's one loader of botocore's bundled data: a client is then set up in about 10 ms
    instead of 80 (the S3 model parsed again each time)."""
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", _loader())
    return session


@functools.cache
def _loader():
    from botocore.session import get_session

    return get_session().get_component("data_loader")  # JSON files only: no credentials


def _user_retries(session) -> bool:
    """Whether the user's AWS settings say how to retry."""
    if os.environ.get("AWS_RETRY_MODE") or os.environ.get("AWS_MAX_ATTEMPTS"):
        return True
    try:
        scoped = session.get_scoped_config()
    except Exception:  # an unknown profile, a broken file: the client says so as it connects
        return False
    return "retry_mode" in scoped or "max_attempts" in scoped


def warm_up(fs, root: str) -> None:
    """Set up the client and make one request (a HEAD under ``root``), so that the first
    upload finds the client, its credentials and a connection ready; never raises."""
    with contextlib.suppress(Exception):
        if callable(getattr(fs, "connect", None)):
            fs.connect()
        if hasattr(fs, "_call_s3"):
            bucket, key, _ = fs.split_path(f"{root}/sha256/")
            fs.call_s3("head_object", Bucket=bucket, Key=key)


def put_all(fs, blobs: Iterable[Blob], options: Mapping) -> None:
    """Send each blob not yet stored. ``blobs`` is pulled one at a time while earlier files
    go up; the first failure (an ArtifactError naming the file and its uri) stops new uploads
    and is raised once those under way have ended."""
    if getattr(fs, "async_impl", False):
        _put_async(fs, _once(blobs), options)
        return
    for blob in _once(blobs):  # memory:// and other synchronous filesystems
        try:
            if blob.size < ASK_FIRST or not holds(fs, blob.uri, blob.size):
                if blob.data is None:
                    fs.put_file(blob.where, blob.uri, **options)
                else:
                    fs.pipe_file(blob.uri, blob.data)
        except Exception as exc:  # each fsspec backend raises its own
            raise remote_error(blob.where, blob.uri, exc) from exc


def _put_async(fs, blobs: Iterator[Blob], options: Mapping) -> None:
    gate, failed = _Gate(IN_FLIGHT, IN_MEMORY), threading.Event()
    futures: list[concurrent.futures.Future] = []

    def settle(future: concurrent.futures.Future, held: int) -> None:
        gate.leave(held)
        if future.cancelled() or future.exception() is not None:
            failed.set()

    try:
        for blob in blobs:
            held = len(blob.data) if blob.data is not None else 0
            gate.enter(held)
            if failed.is_set():
                gate.leave(held)
                break
            future = asyncio.run_coroutine_threadsafe(_send(fs, blob, options), fs.loop)
            future.add_done_callback(functools.partial(settle, held=held))
            futures.append(future)
    finally:
        concurrent.futures.wait(futures)  # nothing left running when this returns or raises
    for future in futures:
        future.result()


class _Gate:
    """At most ``most`` uploads under way, holding at most ``budget`` bytes in memory
    together (one upload may hold more, alone)."""

    def __init__(self, most: int, budget: int) -> None:
        self.most, self.budget, self.count, self.held = most, budget, 0, 0
        self.changed = threading.Condition()

    def enter(self, held: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.count == 0 or (
                self.count < self.most and self.held + held <= self.budget))
            self.count, self.held = self.count + 1, self.held + held

    def leave(self, held: int) -> None:
        with self.changed:
            self.count, self.held = self.count - 1, self.held - held
            self.changed.notify_all()


def holds(fs, uri: str, size: int) -> bool:
    """Whether a complete blob (``size`` bytes) is stored at ``uri``."""
    if getattr(fs, "async_impl", False):
        from fsspec.asyn import sync

        return sync(fs.loop, _held, fs, uri, size)
    try:
        return fs.info(uri).get("size") == size
    except FileNotFoundError:
        return False


def _once(blobs: Iterable[Blob]) -> Iterator[Blob]:
    """Each uri once (a folder may hold the same bytes twice)."""
    seen = set()
    for blob in blobs:
        if blob.uri not in seen:
            seen.add(blob.uri)
            yield blob


async def _send(fs, blob: Blob, options: Mapping) -> None:
    try:
        if blob.size < ASK_FIRST or not await _held(fs, blob.uri, blob.size):
            if blob.data is None:
                await fs._put_file(blob.where, blob.uri, **options)
            else:
                await fs._pipe_file(blob.uri, blob.data)
    except Exception as exc:  # each fsspec backend raises its own
        raise remote_error(blob.where, blob.uri, exc) from exc


async def _held(fs, uri: str, size: int) -> bool:
    try:
        if hasattr(fs, "_call_s3"):  # s3fs: one HEAD (its _info adds a LIST for a missing key)
            bucket, key, _ = fs.split_path(uri)
            head = await fs._call_s3("head_object", Bucket=bucket, Key=key)
            return head.get("ContentLength") == size
        return (await fs._info(uri)).get("size") == size
    except FileNotFoundError:
        return False


def remote_error(where: str, target: str, exc: BaseException,
                 what: str = "cannot store") -> ArtifactError:
    """An object store's failure, said so that the fix is clear."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError):
        hint = ("access denied: check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY) and the bucket's policy")
        return ArtifactError(where, f"{what} at {target}: {hint} ({text})")
    if isinstance(exc, FileNotFoundError) and "bucket does not exist" in text.lower():
        bucket = target.split("://", 1)[-1].split("/", 1)[0]
        return ArtifactError(where, f"{what} at {target}: the bucket {bucket!r} does not exist "
                                    f"(create it, or fix `artifacts` in cairn.toml)")
    return ArtifactError(where, f"{what} at {target}: {text}")
