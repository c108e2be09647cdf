"""Serve the dashboard (``cairn dashboard``) until Ctrl-C, then stop it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from demo.errors import DemoStepError
from demo.pipeline import environment

__all__ = ["serve"]

HOST = "127.0.0.1"
_START_TIMEOUT = 90.0


def serve(root: Path, port: int) -> int:
    """Run ``cairn dashboard --headless`` on 127.0.0.1:``port`` in ``root``, print its
    address once it answers, and stop it on Ctrl-C; returns its exit status."""
    command = [sys.executable, "-m", "registry.cli", "dashboard", "--headless",
               "--host", HOST, "--port", str(port)]
    server = subprocess.Popen(command, cwd=root, env=environment())
    try:
        _wait_healthy(server, port)
        print(f"\nThe dashboard is on http://{HOST}:{port} (Ctrl-C stops it)", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        print("\nstopping the dashboard...", flush=True)
        return _stop(server, interrupted=True)
    except BaseException:
        _stop(server, interrupted=False)
        raise


def _wait_healthy(server: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    url = f"http://{HOST}:{port}/_stcore/health"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoStepError("dashboard", f"the server exited with status {server.returncode}"
                                             f" (is port {port} taken? try --port)")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise DemoStepError("dashboard", f"no answer on {url} after {_START_TIMEOUT:.0f} s")


def _stop(server: subprocess.Popen, *, interrupted: bool) -> int:
    """End the server: after Ctrl-C it got the SIGINT too (same process group) and is
    shutting down, so give it time; then SIGTERM, then SIGKILL."""
    steps = [(None, 10.0)] if interrupted else []
    for sig, wait in [*steps, (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]:
        if server.poll() is not None:
            break
        if sig is not None:
            server.send_signal(sig)
        try:
            server.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return server.wait()
