"""A fake Hugging Face Hub and TF Hub on 127.0.0.1, with fault injection, for tests.

Run ``python -m tests._hubserver --root DIR [--port 0] [--verbose]`` from the repository
root; it prints one line ``PORT <n>`` once listening. Files come from ``DIR``:

* ``DIR/hf/<org>/<name>/<filename>`` answers HEAD and GET on
  ``/<org>/<name>/resolve/<revision>/<filename>`` the way the hub answers for an LFS file
  (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` = sha256, ``X-Linked-Size``, ranges).
* ``DIR/tfhub/<path>.tar.gz`` answers HEAD and GET on ``/tfhub/<path>`` (the query string,
  e.g. ``?tf-hub-format=compressed``, is ignored).

Control from another process: ``GET /_stats``, ``POST /_stats/reset`` and ``POST /_control``
with ``{"fault": ..., "token": ...}`` (both fields are set on every call, absent = null).
Faults (both routes): ``wrong_digest`` announces sha256(b"other"); ``truncate`` sends half
the body, framed as a complete short response (``Content-Length`` = the half, the true size
only in ``X-Linked-Size`` and the HEAD); ``404``; ``500`` (HEAD and GET); ``500_get`` (GET
only); ``drop`` sends the headers and half the body, then closes the socket (every GET);
``drop_once`` drops only the first GET after it is set.

``HubServer``, ``start_hub_server`` and the ``hub_server`` fixture drive it from pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import selectors
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests._procs import stop_process

__all__ = ["FAULTS", "HubServer", "commit_of", "hub_server", "main", "online", "start_hub_server"]

REPO_ROOT = Path(__file__).resolve().parents[1]
FAULTS = (None, "wrong_digest", "truncate", "404", "500", "500_get", "drop", "drop_once")
WRONG_DIGEST = hashlib.sha256(b"other").hexdigest()
_HEX40 = re.compile(r"[0-9a-f]{40}")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 1 << 16


def commit_of(repo_id: str) -> str:
    """The fixed commit hash the server reports for ``repo_id`` (sha1 of its text)."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


# --------------------------------------------------------------------------- server


@dataclass(eq=False)
class _Error(Exception):
    """An error answer: status, ``X-Error-Code`` and extra headers."""

    status: int
    code: str | None = None
    message: str = "Not found"
    headers: dict[str, str] = field(default_factory=dict)


class _State:
    """What all handler threads share: settings, the request log, a digest cache."""

    def __init__(self, root: Path, verbose: bool) -> None:
        self.root = root.resolve()
        self.verbose = verbose
        self.lock = threading.Lock()
        self.fault: str | None = None
        self.token: str | None = None
        self._drop_pending = False
        self._log: list[dict[str, Any]] = []
        self._digests: dict[tuple[Path, int, int], str] = {}

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._log.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._log)

    def reset(self) -> None:
        with self.lock:
            self._log.clear()

    def configure(self, fault: str | None, token: str | None) -> None:
        if fault not in FAULTS:
            raise _Error(400, None, f"unknown fault {fault!r}")
        with self.lock:
            self.fault, self.token = fault, token
            self._drop_pending = fault == "drop_once"

    def body_fault(self) -> str | None:
        """The fault for the body of one GET; consumes ``drop_once``."""
        with self.lock:
            if self.fault != "drop_once":
                return self.fault
            pending, self._drop_pending = self._drop_pending, False
            return "drop" if pending else None

    def digest(self, path: Path) -> str:
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
        with self.lock:
            known = self._digests.get(key)
        if known is None:
            with path.open("rb") as f:
                known = hashlib.file_digest(f, "sha256").hexdigest()
            with self.lock:
                self._digests[key] = known
        return known


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.state.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    @property
    def state(self) -> _State:
        return self.server.state

    def log_message(self, format: str, *args: Any) -> None:
        if self.state.verbose:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:
        self._guarded(self._file, "HEAD")

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path == "/_stats":
            self._send_json(200, {"requests": self.state.snapshot()})
        else:
            self._guarded(self._file, "GET")

    def do_POST(self) -> None:
        self._guarded(self._control, "POST")

    def _guarded(self, action: Any, method: str) -> None:
        try:
            action(method)
        except _Error as err:
            self._send_error(err, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ----------------------------------------------------------------- control

    def _control(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stats/reset":
            self.state.reset()
        elif path == "/_control":
            data = json.loads(body or b"{}")
            self.state.configure(data.get("fault"), data.get("token"))
        else:
            raise _Error(404)
        self._send_json(200, {"fault": self.state.fault, "token": self.state.token})

    # ------------------------------------------------------------------- files

    def _file(self, method: str) -> None:
        path = urllib.parse.urlsplit(self.path).path
        rng = self.headers.get("Range")
        self.state.record({"method": method, "path": urllib.parse.unquote(path), "range": rng})
        self._check_auth()
        file, extra = self._locate(path)
        fault = self.state.fault
        if fault == "404":
            raise _Error(404, "EntryNotFound", "Entry not found", extra)
        if fault == "500" or (fault == "500_get" and method == "GET"):
            raise _Error(500, None, "Internal Error", extra)
        self._serve(method, file, extra)

    def _check_auth(self) -> None:
        token = self.state.token
        given = self.headers.get("Authorization")
        if token is None or given == f"Bearer {token}":
            return
        if given is None:
            raise _Error(401, "RepoNotFound", "Invalid username or password.")
        raise _Error(401, None, "Invalid credentials in Authorization header")

    def _locate(self, path: str) -> tuple[Path, dict[str, str]]:
        if path.startswith("/tfhub/"):
            return self._tfhub_file(urllib.parse.unquote(path[len("/tfhub/"):])), {}
        match = _RESOLVE.match(path)
        if match is None:
            raise _Error(404)
        repo_id, revision, filename = (urllib.parse.unquote(g) for g in match.groups())
        return self._hf_file(repo_id, revision, filename)

    @staticmethod
    def _inside(base: Path, *parts: str) -> Path:
        """``base / parts``, refusing anything that resolves outside ``base``."""
        target = base.joinpath(*parts).resolve()
        if not target.is_relative_to(base):
            raise _Error(404)
        return target

    def _tfhub_file(self, handle: str) -> Path:
        file = self._inside(self.state.root / "tfhub", handle.strip("/") + ".tar.gz")
        if not file.is_file():
            raise _Error(404, None, "Model not found")
        return file

    def _hf_file(self, repo_id: str, revision: str, filename: str) -> tuple[Path, dict[str, str]]:
        repo_dir = self._inside(self.state.root / "hf", repo_id)
        if not repo_dir.is_dir():
            raise _Error(404, "RepoNotFound", "Repository not found")
        commit = commit_of(repo_id)
        if _HEX40.fullmatch(revision) and revision != commit:
            raise _Error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        extra = {"X-Repo-Commit": commit}
        file = self._inside(repo_dir, filename)
        if not file.is_file():
            raise _Error(404, "EntryNotFound", "Entry not found", extra)
        return file, extra

    def _byte_range(self, size: int) -> tuple[int, int] | None:
        """The inclusive (first, last) bytes a ``Range: bytes=N-[M]`` header asks for."""
        match = _RANGE.match(self.headers.get("Range") or "")
        if match is None:
            return None
        first, last = int(match[1]), int(match[2] or size - 1)
        if first >= size or last < first:
            raise _Error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
        return first, min(last, size - 1)

    def _serve(self, method: str, file: Path, extra: dict[str, str]) -> None:
        size = file.stat().st_size
        wrong = self.state.fault == "wrong_digest"
        digest = WRONG_DIGEST if wrong else self.state.digest(file)
        kind = "application/gzip" if file.name.endswith(".gz") else "application/octet-stream"
        headers = {**extra, "ETag": f'"{digest}"', "X-Linked-Etag": f'"{digest}"',
                   "X-Linked-Size": str(size), "Accept-Ranges": "bytes", "Content-Type": kind}
        span = self._byte_range(size)
        first, last = span or (0, size - 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        fault = self.state.body_fault() if method == "GET" else None
        if fault == "truncate":
            length //= 2
        headers["Content-Length"] = str(length)
        self._send_head(206 if span else 200, headers)
        if method == "GET":
            self._send_body(file, first, length // 2 if fault == "drop" else length)
        if fault == "drop":
            self._drop()
        elif fault == "truncate":
            self.close_connection = True

    def _send_body(self, file: Path, offset: int, count: int) -> None:
        with file.open("rb") as f:
            f.seek(offset)
            while count > 0:
                chunk = f.read(min(_CHUNK, count))
                if not chunk:
                    break
                self.wfile.write(chunk)
                count -= len(chunk)

    def _drop(self) -> None:
        """Close the socket mid-body: the client sees a protocol error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    # ----------------------------------------------------------------- answers

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self._send_head(status, {"Content-Type": "application/json",
                                 "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _send_error(self, err: _Error, method: str) -> None:
        body = json.dumps({"error": err.message}).encode()
        headers = {**err.headers, "X-Error-Message": err.message,
                   "Content-Type": "application/json", "Content-Length": str(len(body))}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_head(err.status, headers)
        if method != "HEAD":
            self.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    """Serve ``--root`` on 127.0.0.1 until killed; print ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(prog="python -m tests._hubserver", description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = _Server(args.port, _State(args.root, args.verbose))
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


# --------------------------------------------------------------------------- client

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HubServer:
    """A running fake hub (a child process) and the folder it serves."""

    def __init__(self, proc: subprocess.Popen[str], port: int, root: Path) -> None:
        self.proc = proc
        self.port = port
        self.root = root
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_hf_file(self, repo_id: str, filename: str, data: bytes) -> Path:
        """Write ``data`` as ``filename`` of model repo ``repo_id`` ("org/name")."""
        if repo_id.count("/") != 1:
            raise ValueError(f"repo_id must be 'org/name', not {repo_id!r}")
        path = self.root / "hf" / repo_id / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def add_tfhub_archive(self, path: str, saved_model_dir: Path) -> str:
        """Tar+gzip the contents of ``saved_model_dir``; return the handle URL."""
        archive = self.root / "tfhub" / f"{path.strip('/')}.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            for child in sorted(Path(saved_model_dir).iterdir()):
                tar.add(child, arcname=child.name)
        return f"{self.url}/tfhub/{path.strip('/')}"

    def commit_of(self, repo_id: str) -> str:
        """The commit hash the server reports for ``repo_id``."""
        return commit_of(repo_id)

    def _call(self, path: str, payload: Any = None, method: str = "GET") -> Any:
        data = None if method == "GET" else json.dumps(payload or {}).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with _OPENER.open(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict[str, Any]]:
        """Every request served so far: ``{"method", "path", "range"}`` dicts, in order."""
        return self._call("/_stats")["requests"]

    def reset(self) -> None:
        """Forget the requests recorded so far."""
        self._call("/_stats/reset", method="POST")

    def fault(self, fault: str | None = None, token: str | None = None) -> None:
        """Set the fault mode and the required token (None = none) for what follows."""
        self._call("/_control", {"fault": fault, "token": token}, method="POST")

    def stop(self) -> None:
        """Terminate the server process; kill it if it is still there after 5 s."""
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _read_port(proc: subprocess.Popen[str], log: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    # selectors (poll), not select.select: a long test session has file descriptors > 1023.
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hub server exited ({proc.returncode}):\n{log.read_text()}")
            ready = selector.select(0.1)
            line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
            if line.startswith("PORT "):
                return int(line.split()[1])
            if ready and not line:
                time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise TimeoutError(f"hub server gave no port in {timeout} s:\n{log.read_text()}")


def start_hub_server(root: Path, *, verbose: bool = False, timeout: float = 20) -> HubServer:
    """Start a fake hub serving ``root`` in a child process; stderr goes to root/server.log."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / "server.log"
    cmd = [sys.executable, "-m", "tests._hubserver", "--root", str(root)]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd + ["--verbose"] * verbose, cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        port = _read_port(proc, log, timeout)
    except BaseException:
        if proc.stdout is not None:
            proc.stdout.close()
        raise
    return HubServer(proc, port, root)


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServer]:
    """A fake hub serving ``tmp_path / "hub"``, stopped after the test."""
    server = start_hub_server(tmp_path / "hub")
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()


@pytest.fixture
def online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           hub_server: HubServer) -> HubServer:
    """The zoo online against ``hub_server``: the suite's offline switches undone, every
    cache (Hugging Face, TF Hub, the team's weights folder) empty in ``tmp_path``."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "CAIRN_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub-cache"))
    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", constants.ENDPOINT)  # restored after the test
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        constants.HUGGINGFACE_CO_URL_TEMPLATE)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agents.json"))
    return hub_server
