"""Many training processes writing one store at once lose nothing and raise nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from registry.store import SqlStore

PROCESSES, POINTS = 16, 10_000

WRITER = textwrap.dedent("""
    import sys, registry
    with registry.start_run(project="load", name=f"writer-{sys.argv[1]}",
                            params={"worker": int(sys.argv[1])}) as run:
        for step in range(int(sys.argv[2])):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            if step % 1000 == 0:
                run.log_metric("lr", 0.1, step=step)
    print(run.id)
""")


@pytest.mark.slow
def test_sixteen_processes_lose_nothing(tmp_path, store_url):
    SqlStore(store_url)  # an existing store; creation races are tested separately below
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_ARTIFACTS": str(tmp_path / "a"),
           "CAIRN_FLUSH_INTERVAL": "0.2", "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(i), str(POINTS)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(PROCESSES)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    store = SqlStore(store_url)
    for out, _ in outputs:
        r = store.get_run(out.strip())
        assert r.status == "FINISHED"
        assert r.metrics["loss"].count == POINTS and r.metrics["lr"].count == POINTS // 1000
        history = store.metric_history(r.id, ["loss"])["loss"]
        assert [p.step for p in history] == list(range(POINTS))


def test_processes_racing_to_create_a_new_store(tmp_path, store_url):
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_ARTIFACTS": str(tmp_path / "a"),
           "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(i), "10"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert len(SqlStore(store_url).list_runs(project_name="load")) == 6
