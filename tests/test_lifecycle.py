"""Runs end properly whatever happens to the process: SIGTERM, Ctrl-C, kill -9, plain exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from registry.store import SqlStore
from tests._signals import default_sigint

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
    logged = 0
    try:
        with run:
            while True:
                run.log_metric("tick", float(logged))
                logged += 1
                print(logged, time.time(), flush=True)
                time.sleep(0.001)
    finally:
        print("logged", logged, flush=True)
""")
FLUSH_INTERVAL = 0.25
# Beyond the flush interval, a kill may also take what the writer was committing and what
# the scheduler delayed on a busy machine.
SLACK = 1.0


_CHILDREN: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_children():
    """A child left running by a failed test (one that hangs on its signal) is killed by its
    process id, so it never outlives the test."""
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(tmp_path, store_url, mode: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_ARTIFACTS": str(tmp_path / "a"),
           "CAIRN_HEARTBEAT_INTERVAL": "0.2", "CAIRN_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
           "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # Ctrl-C works if ours is ignored
    _CHILDREN.append(proc)
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()
    return proc, run_id


def _logging(proc: subprocess.Popen, points: int) -> list[str]:
    """Wait until the script has logged ``points`` ticks; the lines it printed meanwhile."""
    lines = [proc.stdout.readline()]
    while int(lines[-1].split()[0]) < points:
        lines.append(proc.stdout.readline())
    return lines


def _ticks(store_url: str, run_id: str) -> list[int]:
    """The stored tick history, checked to be a prefix of what was logged."""
    points = SqlStore(store_url).metric_history(run_id, ["tick"])["tick"]
    steps = [p.step for p in points]
    assert steps == list(range(len(steps))) and [p.value for p in points] == steps
    return steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_and_ctrl_c_flush_everything_and_mark_killed(tmp_path, store_url, sig):
    proc, run_id = _start(tmp_path, store_url, "loop")
    _logging(proc, 300)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == (128 + sig if sig == signal.SIGTERM else -sig), err
    logged = int(out.split("logged")[1])
    r = SqlStore(store_url).get_run(run_id)
    assert r.status == "KILLED" and r.metrics["loss"].count == 500
    # Nothing lost: every tick whose log_metric returned is stored (+1: the signal may land
    # between log_metric returning and the script counting it).
    assert len(_ticks(store_url, run_id)) in (logged, logged + 1)
    assert r.metrics["tick"].count == len(_ticks(store_url, run_id))
    assert ("KeyboardInterrupt" if sig == signal.SIGINT else "SystemExit") in r.failure


def test_kill_9_loses_at_most_the_last_flush_interval_and_shows_crashed(tmp_path, store_url):
    proc, run_id = _start(tmp_path, store_url, "loop")
    seen = _logging(proc, 300)
    killed_at = time.time()
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    logged_at = dict(line.split() for line in seen + out.splitlines())  # ticks -> when
    stored = len(_ticks(store_url, run_id))
    last = max(int(n) for n in logged_at)
    assert stored <= last + 1
    if stored < last:  # the first lost tick was logged within the last flush interval
        assert float(logged_at[str(stored + 1)]) >= killed_at - FLUSH_INTERVAL - SLACK
    store = SqlStore(store_url)
    deadline = time.time() + 10
    while store.get_run(run_id).status != "CRASHED" and time.time() < deadline:
        time.sleep(0.1)
    r = store.get_run(run_id)
    assert r.stored_status == "RUNNING" and r.status == "CRASHED"
    assert r.metrics["loss"].count == 500  # flushed before the kill: nothing lost
    assert r.metrics["tick"].count == stored  # the summary matches the history


@pytest.mark.parametrize("mode, status", [("exit", "FINISHED"), ("raise", "FAILED")])
def test_a_run_left_open_is_ended_at_interpreter_exit(tmp_path, store_url, mode, status):
    proc, run_id = _start(tmp_path, store_url, mode)
    proc.wait(timeout=30)
    r = SqlStore(store_url).get_run(run_id)
    assert r.status == status
    if status == "FAILED":
        assert "boom" in r.failure
