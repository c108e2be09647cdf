"""A real S3-protocol server on 127.0.0.1 for tests: moto's server mode in a child process,
with credentials checked, and a proxy in front of it that can stop mid-transfer.

The server starts once per test session (``s3_server``) and is stopped by its pid. Its first
three requests make an IAM user with a key pair allowed everything; from then on every request
must be signed with that key, so wrong credentials are refused as on AWS. Each test that asks
for ``s3`` gets a bucket of its own and the standard AWS settings in its environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``; no profile or config file of the machine is read).

``S3Proxy`` forwards a port to the server; ``stop_after(n)`` makes it go away (listener and
every connection closed) once ``n`` more bytes went up, like a server killed mid-upload, and
``start()`` brings it back on the same port, like the server restarted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._procs import free_port, stop_process

__all__ = ["S3", "S3Proxy", "S3Server", "new_bucket", "s3", "s3_server", "start_s3_server"]

REGION = "us-east-1"
_POLICY = {"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class S3Server:
    """A running moto server (a child process) and the key pair it accepts."""

    proc: subprocess.Popen
    port: int
    key: str = ""
    secret: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, url: str | None = None, secret: str | None = None):
        """A boto3 S3 client signed with the server's key (or ``secret`` instead)."""
        import boto3

        return boto3.client("s3", endpoint_url=url or self.url, region_name=REGION,
                            aws_access_key_id=self.key,
                            aws_secret_access_key=secret or self.secret)

    def stop(self) -> None:
        """Terminate the server by its pid; kill it if it is still there after 5 s."""
        stop_process(self.proc)


def start_s3_server(log: Path, timeout: float = 30) -> S3Server:
    """Start moto's server on a free loopback port, with credentials enforced."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    server = S3Server(proc, port)
    try:
        _wait_for(server, log, timeout)
        server.key, server.secret = _make_user(server.url)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for(server: S3Server, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"moto server exited ({server.proc.returncode}):\n"
                               f"{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port),
                                                                     timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"moto server not listening after {timeout} s:\n{log.read_text()}")


def _make_user(url: str) -> tuple[str, str]:
    """The three unauthenticated requests: a user, its policy, its key pair."""
    import boto3

    iam = boto3.client("iam", endpoint_url=url, region_name=REGION,
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="cairn")
    iam.put_user_policy(UserName="cairn", PolicyName="all", PolicyDocument=json.dumps(_POLICY))
    key = iam.create_access_key(UserName="cairn")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the session, stopped by its pid at the end."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (a dev extra)")
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3:
    """A bucket of the test's own on the session's server, set as the environment's S3."""

    server: S3Server
    bucket: str
    monkeypatch: pytest.MonkeyPatch

    def url(self, prefix: str = "artifacts") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def client(self, **kwargs):
        return self.server.client(**kwargs)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def point_at(self, url: str, secret: str | None = None) -> None:
        """Send the process's S3 requests to ``url`` (a proxy, a dead port), signed with
        ``secret`` if given."""
        self.monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret or self.server.secret)


@pytest.fixture
def s3(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket, and the AWS settings pointing at the loopback server."""
    return new_bucket(s3_server, tmp_path, monkeypatch)


def new_bucket(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A bucket of its own on ``s3_server``, which the process's AWS settings point at."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = f"cairn-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return S3(s3_server, bucket, monkeypatch)


class S3Proxy:
    """A TCP forwarder on 127.0.0.1 to ``target_port`` that can vanish mid-transfer."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._budget: int | None = None
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> S3Proxy:
        """Listen (again) on the proxy's port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener, self._budget = listener, None
        self.stopped.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop_after(self, nbytes: int) -> None:
        """Vanish once ``nbytes`` more bytes have gone up to the server."""
        with self._lock:
            self._budget = nbytes

    def stop(self) -> None:
        """Close the listener and every connection: clients see resets, then refusals."""
        with self._lock:
            socks, self._socks = self._socks, set()
            listener, self._listener = self._listener, None
        for sock in [*socks, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.stopped.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._socks.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True
                             ).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True
                             ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                if up and self._spend(len(data)):
                    self.stop()
                    return
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _spend(self, n: int) -> bool:
        """Count bytes going up; True when the budget is spent."""
        with self._lock:
            if self._budget is None:
                return False
            self._budget -= n
            return self._budget <= 0
