"""Runs end properly whatever happens to the process: SIGTERM, kill -9, plain exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from registry.store import SqlStore

SCRIPT = textwrap.dedent("""
    import sys, time, registry
    run = registry.start_run(project="life", name="victim")
    for i in range(500):
        run.log_metric("loss", float(i))
    run.flush()
    print(run.id, flush=True)
    mode = sys.argv[1]
    if mode == "exit":
        sys.exit(0)
    if mode == "raise":
        raise RuntimeError("boom")
    with run:
        while True:
            run.log_metric("tick", 1.0)
            time.sleep(0.001)
""")


def _start(tmp_path, store_url, mode: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_ARTIFACTS": str(tmp_path / "a"),
           "CAIRN_HEARTBEAT_INTERVAL": "0.2", "CAIRN_FLUSH_INTERVAL": "0.05",
           "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()
    return proc, run_id


def test_sigterm_flushes_and_marks_killed(tmp_path, store_url):
    proc, run_id = _start(tmp_path, store_url, "loop")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    r = SqlStore(store_url).get_run(run_id)
    assert r.status == "KILLED" and r.metrics["loss"].count == 500
    assert r.metrics["tick"].count > 0


def test_kill_9_shows_as_crashed_via_the_heartbeat(tmp_path, store_url):
    proc, run_id = _start(tmp_path, store_url, "loop")
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=10)
    store = SqlStore(store_url)
    deadline = time.time() + 10
    while store.get_run(run_id).status != "CRASHED" and time.time() < deadline:
        time.sleep(0.1)
    r = store.get_run(run_id)
    assert r.stored_status == "RUNNING" and r.status == "CRASHED"
    assert r.metrics["loss"].count == 500  # flushed before the kill: nothing lost


@pytest.mark.parametrize("mode, status", [("exit", "FINISHED"), ("raise", "FAILED")])
def test_a_run_left_open_is_ended_at_interpreter_exit(tmp_path, store_url, mode, status):
    proc, run_id = _start(tmp_path, store_url, mode)
    proc.wait(timeout=30)
    r = SqlStore(store_url).get_run(run_id)
    assert r.status == status
    if status == "FAILED":
        assert "boom" in r.failure
