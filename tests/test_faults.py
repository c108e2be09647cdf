"""The store failing under a training run: locked, cut off, restarted. Nothing is lost silently.

Process faults (kill -9, SIGTERM, Ctrl-C) are in ``test_lifecycle.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import registry
from registry.errors import SpoolError, StoreUnavailableError
from registry.store import SqlStore
from registry.tracking import spool
from tests._pgserver import PrivateServer, TcpProxy, find_bin, sqlite_locked

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


def _steps(store, run_id: str, key: str = "loss") -> list[int]:
    return [p.step for p in store.metric_history(run_id, [key]).get(key, [])]


def _log(run, start: int, stop: int) -> None:
    for i in range(start, stop):
        run.log_metric("loss", float(i))


# -- the spool file --------------------------------------------------------------------------


def test_a_spool_file_keeps_chunks_non_finite_values_and_the_end(tmp_path):
    chunks = [("loss", 3, [0, 1, 2], [1.5, math.nan, math.inf], [10.0, 11.0, 12.0]),
              ("acc", 0, [5], [-math.inf], [13.0])]
    end = spool.EndRecord("KILLED", 99.5, "Traceback ...", ("a warning",))
    path = tmp_path / "r.jsonl"
    assert spool.write(path, "abc", "postgresql://ana:secret@db/reg", chunks, end) == 4
    text = path.read_text()
    for line in text.splitlines():  # strict JSON: no NaN or Infinity tokens
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    back = spool.read(path)
    assert "secret" not in text and back.store == "postgresql+psycopg://ana:***@db/reg"
    assert back.run_id == "abc" and back.end == end and back.points == 4
    (key, seq, steps, values, times), acc = back.chunks
    assert (key, seq, steps, times) == ("loss", 3, [0, 1, 2], [10.0, 11.0, 12.0])
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2] == math.inf
    assert acc[3] == [-math.inf]


@pytest.mark.parametrize("lines, line, reason", [
    ([], 0, "empty"),
    (['{"run_id": "x"}'], 1, "not a Cairn spool file"),
    (['{"format": "cairn-spool", "version": 2, "run_id": "x", "store": "s", "created": 1}'],
     1, "version 2"),
    (['{"format": "cairn-spool", "version": 1, "run_id": "x", "store": "s", "created": 1}',
      '{"type": "chunk", "key": "a", "seq": 0, "steps": [1], "values": [], "times": [1]}'],
     2, "equally long"),
    (['{"format": "cairn-spool", "version": 1, "run_id": "x", "store": "s", "created": 1}',
      '{"type": "chunk", "key": "a", "se'], 2, "unreadable"),
])
def test_a_damaged_spool_file_is_refused_with_its_line(tmp_path, lines, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(f"{x}\n" for x in lines))
    with pytest.raises(SpoolError, match=reason) as info:
        spool.read(path)
    assert info.value.line == line


# -- delivery --------------------------------------------------------------------------------


def test_delivery_is_idempotent_and_recomputes_summaries(workspace):
    with registry.start_run(project="faults", workspace=workspace) as run:
        _log(run, 0, 10)
    store = workspace.open_store()
    stored = store.metric_history(run.id, ["loss"])["loss"]
    again = ("loss", 0, [p.step for p in stored], [p.value for p in stored],
             [p.time for p in stored])
    tail = [("loss", 1, [10, 11, 12, 13, 14], [10.0, math.nan, -3.0, 13.0, 14.0], [1.0] * 5),
            ("acc", 0, [0], [0.5], [2.0])]
    path = spool.spool_path(workspace, run.id)
    spool.write(path, run.id, workspace.store_url, [again, *tail])
    copy = path.with_suffix(".keep")
    shutil.copy(path, copy)

    report = spool.deliver(workspace)
    assert report.ok and report.delivered == [path] and not path.exists()
    assert (report.points, report.duplicates, report.statuses) == (6, 10, 0)
    r = store.get_run(run.id)
    loss = r.metrics["loss"]
    assert (loss.count, loss.nonfinite_count, loss.min, loss.max) == (15, 1, -3.0, 14.0)
    assert (loss.last, loss.last_step) == (14.0, 14) and r.metrics["acc"].count == 1
    assert r.status == "FINISHED" and "delivered late" in r.warnings[-1]

    copy.rename(path)  # the same file once more, as after a delivery cut short
    report = spool.deliver(workspace)
    assert report.ok and (report.points, report.duplicates) == (0, 16)
    assert _steps(store, run.id) == list(range(15))
    assert store.get_run(run.id).metrics["loss"].count == 15


def test_a_spool_for_another_store_or_run_stays_and_is_reported(workspace):
    with registry.start_run(project="faults", workspace=workspace) as run:
        _log(run, 0, 3)
    chunk = [("loss", 9, [3], [3.0], [1.0])]
    elsewhere = spool.spool_path(workspace, run.id)
    spool.write(elsewhere, run.id, "sqlite:////nowhere/registry.db", chunk)
    unknown = spool.spool_path(workspace, "f" * 32)
    spool.write(unknown, "f" * 32, workspace.store_url, chunk)
    report = spool.deliver(workspace)
    reasons = dict(report.failed)
    assert not report.ok and elsewhere.exists() and unknown.exists()
    assert "spooled for store sqlite:////nowhere/registry.db" in reasons[elsewhere]
    assert "no run matches" in reasons[unknown]
    assert _steps(workspace.open_store(), run.id) == [0, 1, 2]


def test_cairn_runs_deliver_says_what_it_did_and_fails_on_leftovers(workspace, monkeypatch):
    from registry.cli import cli

    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    with registry.start_run(project="faults", workspace=workspace) as run:
        _log(run, 0, 3)
    spool.write(spool.spool_path(workspace, run.id), run.id, workspace.store_url,
                [("loss", 1, [3, 4], [3.0, 4.0], [1.0, 1.0])])
    result = CliRunner().invoke(cli, ["runs", "deliver"])
    assert result.exit_code == 0 and "2 metric points" in result.output
    assert _steps(workspace.open_store(), run.id) == [0, 1, 2, 3, 4]
    (spool.spool_dir(workspace) / "junk.jsonl").write_text("junk\n")
    result = CliRunner().invoke(cli, ["runs", "deliver"])
    assert result.exit_code == 1 and "junk.jsonl" in result.output


def test_a_spool_file_being_delivered_elsewhere_is_left_to_that_process(workspace):
    import fcntl

    with registry.start_run(project="faults", workspace=workspace) as run:
        _log(run, 0, 3)
    path = spool.spool_path(workspace, run.id)
    spool.write(path, run.id, workspace.store_url, [("loss", 1, [3], [3.0], [1.0])])
    with path.open() as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        report = spool.deliver(workspace)
    assert report.ok and report.busy == [path] and path.exists()
    assert spool.deliver(workspace).points == 1 and not path.exists()


# -- the writer's retries --------------------------------------------------------------------


class _CommitThenFail:
    """The store, its next metric write committing and then failing as a connection lost
    before the acknowledgement would."""

    def __init__(self, store) -> None:
        self.store, self.armed = store, True

    def log_metrics(self, *args, **kwargs) -> int:
        written = self.store.log_metrics(*args, **kwargs)
        if self.armed and written:
            self.armed = False
            raise StoreUnavailableError(self.store.url, "server closed the connection")
        return written

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_batch_committed_before_the_connection_broke_is_not_written_twice(workspace):
    run = registry.start_run(project="faults", workspace=workspace)
    flaky = run._writer._store = _CommitThenFail(run._writer._store)
    _log(run, 0, 1000)
    run.end()
    r = workspace.open_store().get_run(run.id)
    assert not flaky.armed and r.status == "FINISHED" and r.metrics["loss"].count == 1000
    assert _steps(workspace.open_store(), run.id) == list(range(1000))
    assert spool.spooled_files(workspace) == []


# -- SQLite: the file locked by another process ----------------------------------------------


@SQLITE
def test_sqlite_locked_mid_run_training_goes_on_and_nothing_is_lost(workspace):
    run = registry.start_run(project="faults", workspace=workspace)
    _log(run, 0, 100)
    assert run.flush(timeout=10)
    with sqlite_locked(workspace.store_url):
        _log(run, 100, 5100)  # returns at once: the writer waits on the lock, not the loop
        assert not run.flush(timeout=0.5)
    run.end()
    store = workspace.open_store()
    assert store.get_run(run.id).status == "FINISHED"
    assert _steps(store, run.id) == list(range(5100))
    assert spool.spooled_files(workspace) == []


@SQLITE
def test_sqlite_locked_at_the_end_spools_then_delivers_everything_once(workspace, caplog):
    run = registry.start_run(project="faults", workspace=workspace)
    _log(run, 0, 100)
    assert run.flush(timeout=10)
    with sqlite_locked(workspace.store_url), caplog.at_level(logging.ERROR, "registry"):
        _log(run, 100, 1100)
        run.end(timeout=0.5)
    [path] = spool.spooled_files(workspace)
    assert f"were saved to {path}" in run.warnings[-1]
    assert "1000 metric points and the final status FINISHED" in caplog.text
    assert str(path) in caplog.text and spool.read(path).end.status == "FINISHED"
    run._writer._thread.join(30)  # the write that waited on the lock may commit: no matter
    store = workspace.open_store()
    assert store.get_run(run.id).stored_status == "RUNNING"

    report = spool.deliver(workspace)
    assert report.ok and report.statuses == 1 and report.points + report.duplicates == 1000
    r = store.get_run(run.id)
    assert r.status == "FINISHED" and r.metrics["loss"].count == 1100
    assert _steps(store, run.id) == list(range(1100))
    assert spool.spooled_files(workspace) == []


# -- PostgreSQL: the network cut (a proxy in front of the server) ----------------------------


@pytest.fixture
def cut_off(workspace):
    """The workspace reaching its PostgreSQL store through a proxy the test can cut."""
    url = make_url(workspace.store_url)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1").start()
    through = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        yield replace(workspace, store_url=through), proxy
    finally:
        proxy.cut()


@POSTGRES
def test_postgres_cut_off_mid_run_training_goes_on_and_nothing_is_lost(cut_off):
    ws, proxy = cut_off
    run = registry.start_run(project="faults", workspace=ws)
    _log(run, 0, 100)
    assert run.flush(timeout=10)
    proxy.cut()
    _log(run, 100, 5100)  # never raises nor waits for the store
    assert not run.flush(timeout=10) and run._writer.last_error is not None
    proxy.start()
    run.end()
    store = ws.open_store()
    assert store.get_run(run.id).status == "FINISHED"
    assert _steps(store, run.id) == list(range(5100))
    assert spool.spooled_files(ws) == []


@POSTGRES
def test_a_long_outage_moves_held_points_to_the_spool_and_back(cut_off, monkeypatch):
    monkeypatch.setattr("registry.tracking._writer.HOLD_POINTS", 1000)
    ws, proxy = cut_off
    run = registry.start_run(project="faults", workspace=ws)
    _log(run, 0, 100)
    assert run.flush(timeout=10)
    proxy.cut()
    for start in range(100, 5100, 500):
        _log(run, start, start + 500)
        run.flush(timeout=10)
    assert run._writer.spilled >= 4000 and run._writer.pending <= 1000
    assert spool.spooled_files(ws)
    proxy.start()
    run.end()  # the store is back: the run delivers what it moved out
    store = ws.open_store()
    r = store.get_run(run.id)
    assert r.status == "FINISHED" and r.metrics["loss"].count == 5100
    assert _steps(store, run.id) == list(range(5100))
    assert spool.spooled_files(ws) == []


@POSTGRES
def test_postgres_cut_off_at_the_end_delivers_at_the_next_start(cut_off, caplog):
    ws, proxy = cut_off
    run = registry.start_run(project="faults", workspace=ws)
    _log(run, 0, 100)
    assert run.flush(timeout=10)
    proxy.cut()
    _log(run, 100, 1100)
    with caplog.at_level(logging.ERROR, "registry"):
        run.end(timeout=1)
    [path] = spool.spooled_files(ws)
    assert "1000 metric points and the final status FINISHED" in caplog.text
    assert str(path) in caplog.text and spool.read(path).points == 1000
    proxy.start()
    assert ws.open_store().get_run(run.id).stored_status == "RUNNING"

    with registry.start_run(project="faults", workspace=ws):  # delivers on its way
        pass
    r = ws.open_store().get_run(run.id)
    assert r.status == "FINISHED" and r.metrics["loss"].count == 1100
    assert "delivered late" in r.warnings[-1]
    assert _steps(ws.open_store(), run.id) == list(range(1100))
    assert spool.spooled_files(ws) == []


# -- PostgreSQL: the server restarted while a training process logs --------------------------


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL server of this module's own, free to be restarted."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing: cannot run PostgreSQL")
    server = PrivateServer(bin_dir)
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()


TRAIN = textwrap.dedent("""
    import sys, time, registry
    n = int(sys.argv[1])
    with registry.start_run(project="faults", name="restart") as run:
        print(run.id, flush=True)
        for step in range(n):
            run.log_metric("loss", 1.0 / (step + 1))
            if step % 100 == 0:
                print(step, flush=True)
            time.sleep(0.001)
""")


@pytest.mark.slow
def test_postgres_restarts_during_logging_lose_nothing(tmp_path, private_pg):
    env = {**os.environ, "CAIRN_STORE": private_pg.url, "CAIRN_ARTIFACTS": str(tmp_path / "a"),
           "CAIRN_FLUSH_INTERVAL": "0.05", "CAIRN_HEARTBEAT_INTERVAL": "0.2",
           "PYTHONPATH": os.getcwd()}
    n = 4000
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(n)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()
        for mode, at in (("fast", 500), ("immediate", 2000)):  # clean stop, then a crash
            while int(proc.stdout.readline() or n) < at:
                pass
            private_pg.stop(mode)
            private_pg.start()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "cannot write metrics yet" in err  # the restarts did reach the writer
    store = SqlStore(private_pg.url)
    try:
        r = store.get_run(run_id)
        assert r.status == "FINISHED" and r.metrics["loss"].count == n
        assert _steps(store, run_id) == list(range(n))
    finally:
        store.close()
    assert not list((tmp_path / ".cairn" / "spool").glob("*"))
