"""Fault figures (issue 9): kill -9, SIGTERM, Ctrl-C, the store unreachable, PostgreSQL restarts.

    .venv/bin/python benchmarks/bench_faults.py                # SQLite only, about 2 minutes
    CAIRN_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/bench_faults.py --repeat 5 # adds PostgreSQL, about 6 min

For each fault: what was tried, how many points, what survived, what was lost. The shared
PostgreSQL server is only reached through a proxy the script cuts; the restart rows use a
private server (``tests/_pgserver.py``). Nothing here asserts: see tests/test_faults.py and
tests/test_lifecycle.py for the checks, benchmarks/RESULTS.md for the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from _common import load_average, machine_facts, postgres_schema, print_facts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import registry  # noqa: E402
from registry.config import Workspace  # noqa: E402
from registry.store import SqlStore  # noqa: E402
from registry.tracking import spool  # noqa: E402
from registry.tracking._writer import CLOSE_TIMEOUT_S  # noqa: E402
from tests._pgserver import PrivateServer, TcpProxy, find_bin, sqlite_locked  # noqa: E402
from tests._signals import default_sigint  # noqa: E402

TRAIN = textwrap.dedent("""
    import sys, time, registry
    run = registry.start_run(project="faults", name="victim")
    print(run.id, flush=True)
    logged = 0
    try:
        with run:
            while logged < int(sys.argv[1]):
                run.log_metric("tick", float(logged))
                logged += 1
                print(logged, time.time(), flush=True)
                time.sleep(0.001)
    finally:
        print("logged", logged, flush=True)
""")


def _ticks(url: str, run_id: str) -> int:
    """How many ticks are stored; checks they are a prefix of what was logged."""
    store = SqlStore(url)
    try:
        steps = [p.step for p in store.metric_history(run_id, ["tick"]).get("tick", [])]
    finally:
        store.close()
    if steps != list(range(len(steps))):
        raise AssertionError(f"run {run_id}: stored ticks are not a prefix of those logged")
    return len(steps)


def _spawn(url: str, folder: Path, flush: float, limit: int = 10**9) -> tuple:
    env = {**os.environ, "CAIRN_STORE": url, "CAIRN_ARTIFACTS": str(folder / "a"),
           "CAIRN_FLUSH_INTERVAL": str(flush), "CAIRN_HEARTBEAT_INTERVAL": "0.5",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(limit)], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # Ctrl-C works if ours is ignored
    return proc, proc.stdout.readline().strip()


def process_fault(url: str, folder: Path, sig: int, flush: float, repeat: int) -> dict:
    """Signal a training process after 1 to 3 s of logging; count what the store kept."""
    logged = stored = worst = 0
    window, statuses = 0.0, set()
    for _ in range(repeat):
        proc, run_id = _spawn(url, folder, flush)
        seen, until = [], time.time() + random.uniform(1.0, 3.0)
        while time.time() < until:
            seen.append(proc.stdout.readline())
        killed_at = time.time()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        at = dict(line.split() for line in seen + out.splitlines() if line[0].isdigit())
        done = max(int(n) for n in at)
        if "logged" in out:
            done = max(done, int(out.split("logged")[1]))
        kept = _ticks(url, run_id)
        logged, stored, worst = logged + done, stored + kept, max(worst, done - kept)
        if kept < done:
            window = max(window, killed_at - float(at[str(kept + 1)]))
        statuses.add(_final_status(url, run_id))
    return {"runs": repeat, "logged": logged, "stored": stored, "lost": logged - stored,
            "worst": worst, "window": window, "status": "/".join(sorted(statuses))}


def _final_status(url: str, run_id: str) -> str:
    store = SqlStore(url)
    try:
        deadline = time.time() + 10  # a killed run turns CRASHED after 3 missed heartbeats
        while (status := store.get_run(run_id).status) == "RUNNING" and time.time() < deadline:
            time.sleep(0.1)
        return status
    finally:
        store.close()


# -- the store unreachable (in-process runs) -------------------------------------------------


@contextlib.contextmanager
def proxy_cut(proxy: TcpProxy):
    proxy.cut()
    try:
        yield
    finally:
        proxy.start()


def _log_for(run, start: int, seconds: float) -> tuple[int, float]:
    """Log ticks for ``seconds`` at about 10,000 points/s; (next step, slowest call)."""
    step, slowest, until = start, 0.0, time.monotonic() + seconds
    while time.monotonic() < until:
        for _ in range(100):
            began = time.perf_counter()
            run.log_metric("tick", float(step))
            slowest = max(slowest, time.perf_counter() - began)
            step += 1
        time.sleep(0.01)
    return step, slowest


def outage_mid_run(ws: Workspace, outage, repeat: int, seconds: float) -> dict:
    """The store unreachable for ``seconds`` while the run logs; back before it ends."""
    logged = stored = 0
    slowest = 0.0
    for _ in range(repeat):
        run = registry.start_run(project="faults", workspace=ws)
        step, _ = _log_for(run, 0, 0.5)
        run.flush(timeout=30)
        with outage():
            step, slow = _log_for(run, step, seconds)
        run.end()
        logged, stored, slowest = logged + step, stored + _ticks(ws.store_url, run.id), max(
            slowest, slow)
    return {"runs": repeat, "logged": logged, "stored": stored, "lost": logged - stored,
            "slowest": slowest, "spooled": len(spool.spooled_files(ws))}


def outage_at_end(ws: Workspace, outage, repeat: int, timeout: float) -> dict:
    """The store still unreachable when the run ends: spooled, then delivered."""
    logged = stored = spooled = delivered = dupes = 0
    ends = []
    for _ in range(repeat):
        run = registry.start_run(project="faults", workspace=ws)
        step, _ = _log_for(run, 0, 0.5)
        run.flush(timeout=30)
        with outage():
            step, _ = _log_for(run, step, 1.0)
            began = time.monotonic()
            run.end(timeout=timeout)
            ends.append(time.monotonic() - began)
            spooled += sum(spool.read(p).points for p in spool.spooled_files(ws))
        run._writer._thread.join(60)  # a write that hung on the outage returns now
        report = spool.deliver(ws)
        delivered, dupes = delivered + report.points, dupes + report.duplicates
        r = ws.open_store().get_run(run.id)
        if r.status != "FINISHED" or not report.ok:
            raise AssertionError(f"run {run.id}: {r.status}; {report.summary()}")
        logged, stored = logged + step, stored + _ticks(ws.store_url, run.id)
    return {"runs": repeat, "logged": logged, "spooled": spooled, "delivered": delivered,
            "dupes": dupes, "stored": stored, "lost": logged - stored, "end_s": max(ends)}


def held_bytes_per_point(ws: Workspace, proxy: TcpProxy, points: int = 1_000_000) -> float:
    """Memory the writer holds per point while the store is down (RSS growth)."""
    run = registry.start_run(project="faults", workspace=ws)
    run.flush(timeout=30)
    with proxy_cut(proxy):
        before = _rss()
        for i in range(points):
            run.log_metric("tick", float(i))
        run.flush(timeout=30)
        grown = _rss() - before
    run.end()
    return grown / points


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- PostgreSQL restarts ---------------------------------------------------------------------


def restarts(server: PrivateServer, folder: Path, repeat: int, points: int = 8000) -> dict:
    """Restart the server ``repeat`` times (fast and immediate stops) while a process logs."""
    proc, run_id = _spawn(server.url, folder, 0.25, limit=points)
    for n in range(repeat):
        time.sleep(1.0)
        server.stop("fast" if n % 2 == 0 else "immediate")
        server.start()
    out, err = proc.communicate(timeout=300)
    status = _final_status(server.url, run_id)
    return {"restarts": repeat, "logged": int(out.split("logged")[1]),
            "stored": _ticks(server.url, run_id), "status": status,
            "retries": err.count("cannot write metrics yet")}


# -- report ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print_facts(machine_facts(["sqlalchemy", "psycopg"]))
    pg = os.environ.get("CAIRN_BENCH_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sqlite = f"sqlite:///{folder / 'registry.db'}"
        print("\n## process faults\n")
        with contextlib.ExitStack() as stack:
            urls = {"SQLite": sqlite}
            if pg:
                urls["PostgreSQL"] = stack.enter_context(postgres_schema(pg))
            for label, url in urls.items():
                for name, sig, flush in (("kill -9", signal.SIGKILL, 1.0),
                                         ("kill -9", signal.SIGKILL, 0.25),
                                         ("SIGTERM", signal.SIGTERM, 1.0),
                                         ("Ctrl-C", signal.SIGINT, 1.0)):
                    print(f"{name} ({label}, flush {flush} s):",
                          process_fault(url, folder, sig, flush, args.repeat), flush=True)
            print("\n## the store unreachable\n")
            ws = Workspace(root=folder, store_url=sqlite, artifact_root=str(folder / "a"),
                           catalog_dir=folder / "c", owner="bench", heartbeat_interval=1.0,
                           flush_interval=0.25)
            lock = lambda: sqlite_locked(sqlite)  # noqa: E731
            print("SQLite locked 2 s mid-run:", outage_mid_run(ws, lock, args.repeat, 2.0))
            print("SQLite locked at the end (end timeout 2 s):",
                  outage_at_end(ws, lock, args.repeat, 2.0))
            print("SQLite locked at the end (default end timeout):",
                  outage_at_end(ws, lock, 1, CLOSE_TIMEOUT_S))
            if pg:
                _postgres_outages(ws, urls["PostgreSQL"], args.repeat)
        _postgres_restarts(folder, args.repeat)
    print(f"\nload average at the end: {load_average()}")


def _postgres_outages(ws: Workspace, url: str, repeat: int) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    proxy = TcpProxy(parsed.port or 5432, parsed.host or "127.0.0.1").start()
    try:
        ws = replace(ws, store_url=parsed.set(port=proxy.port).render_as_string(False))
        cut = lambda: proxy_cut(proxy)  # noqa: E731
        print("PostgreSQL cut off 2 s mid-run:", outage_mid_run(ws, cut, repeat, 2.0))
        print("PostgreSQL cut off at the end (default end timeout):",
              outage_at_end(ws, cut, repeat, CLOSE_TIMEOUT_S))
        print(f"memory held per point while cut off: {held_bytes_per_point(ws, proxy):.0f} B")
    finally:
        proxy.cut()


def _postgres_restarts(folder: Path, repeat: int) -> None:
    bin_dir = find_bin()
    if bin_dir is None:
        print("PostgreSQL restarts: skipped (no server binaries)")
        return
    server = PrivateServer(bin_dir)
    try:
        server.init().start()
        print("\n## PostgreSQL restarts\n")
        print("restarts while logging:", restarts(server, folder, repeat))
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
