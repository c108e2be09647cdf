"""Helpers shared by Cairn's benchmark scripts: timing, machine facts, fixtures, the table.

Benchmarks print figures; they never assert on them. Every figure is a median, and every
comparison is a ratio against an anchor measured in the same run on the same machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "Row",
    "dvc_command",
    "fmt_rate",
    "fmt_time",
    "load_average",
    "machine_facts",
    "make_dvc_repo",
    "median",
    "percentile",
    "postgres_schema",
    "postgres_version",
    "print_facts",
    "print_table",
    "progress",
    "quiet_mlflow",
    "step",
    "subprocess_seconds",
]

MISSING = "—"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def fmt_time(seconds: float | None) -> str:
    """A duration in the unit that keeps it between 1 and 1,000."""
    if seconds is None:
        return MISSING
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def fmt_rate(per_second: float | None) -> str:
    return MISSING if per_second is None else f"{per_second:,.0f} points/s"


# -- results table --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the comparison table; `passed` is None for figures without a target."""

    measure: str
    cairn: str
    anchor: str = MISSING
    ratio: str = MISSING
    target: str = MISSING
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "**FAIL**", None: "info"}[self.passed]


def print_table(rows: Sequence[Row], title: str) -> None:
    """A Markdown table: readable in a terminal, pasteable into RESULTS.md."""
    header = ("Measure", "Cairn", "Anchor", "Ratio", "Target", "Result")
    cells = [header, *[(r.measure, r.cairn, r.anchor, r.ratio, r.target, r.verdict) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    print(f"\n{title}\n")
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    missed = [r.measure for r in rows if r.passed is False]
    print("\nTargets missed: " + ("; ".join(missed) if missed else "none"))


# -- machine facts --------------------------------------------------------------------------


def machine_facts(packages: Sequence[str]) -> list[tuple[str, str]]:
    """What a reader needs to compare figures across machines."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    facts = [
        ("CPU", _cpu_model()),
        ("Cores", f"{usable} usable ({os.cpu_count()} logical)"),
        ("Memory", _memory()),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("SQLite", sqlite3.sqlite_version),
        ("Load average", load_average()),
    ]
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    facts.append(("Packages", ", ".join(versions)))
    return facts


def load_average() -> str:
    """1, 5 and 15 minute load: figures taken on a busy machine are slower and noisier."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "unknown"


def print_facts(facts: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"{key.ljust(width)} : {value}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{total / 2**30:.1f} GiB"


# -- processes ------------------------------------------------------------------------------


def subprocess_seconds(args: Sequence[str], *, cwd: str | os.PathLike | None = None,
                       env: dict[str, str] | None = None) -> float:
    """Wall time of one subprocess run to completion; raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def quiet_mlflow() -> None:
    """Keep MLflow (and the Alembic migrations it runs) from printing while we time it."""
    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- fixtures -------------------------------------------------------------------------------


def make_dvc_repo(root: Path, *, nfiles: int, file_size: int, folder: str = "data/train") -> Path:
    """A committed git repository with a DVC-tracked folder of `nfiles` small files.

    The files get an mtime an hour back, as a dataset on disk would: a file written in the
    last two seconds is never stat-cached (the "racy clean" rule), which would not be typical.
    """
    root.mkdir(parents=True, exist_ok=True)
    _run(["git", "init", "-q", "-b", "main"], root)
    _run(["git", "config", "user.name", "Cairn Bench"], root)
    _run(["git", "config", "user.email", "bench@example.com"], root)
    _run([*_dvc(), "init", "-q"], root)
    (root / ".gitignore").write_text(".cairn/\n")
    data = root / folder
    data.mkdir(parents=True)
    past = time.time() - 3600
    for i in range(nfiles):
        path = data / f"sample_{i:05d}.txt"
        path.write_bytes((f"sample {i:05d} " * (file_size // 13 + 1)).encode()[:file_size])
        os.utime(path, (past, past))
    _run([*_dvc(), "add", "-q", folder], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "data"], root)
    return root


def dvc_command() -> list[str]:
    """The DVC CLI of this interpreter's environment."""
    return _dvc()


def _dvc() -> list[str]:
    beside = Path(sys.executable).parent / "dvc"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def _run(args: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')}")


@contextlib.contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema on the server at `base_url`; yields a URL that uses it, then drops it."""
    from sqlalchemy import create_engine, text

    if base_url.startswith(("postgresql://", "postgres://")):
        base_url = "postgresql+psycopg://" + base_url.split("://", 1)[1]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base_url else "?"
        try:
            yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def postgres_version(url: str) -> str | None:
    """The server's version, or None when nothing answers there (its rows are left out)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception:  # no server there: the PostgreSQL rows are left out, not the benchmark
        return None
    finally:
        engine.dispose()


def progress(line: str) -> None:
    """Print a progress line under the current step."""
    print("\n" + line, end="", flush=True)


def step(what: str, measure):
    """Run ``measure()``, saying what and how long it took."""
    print(f"... {what}", end="", flush=True)
    began = time.perf_counter()
    result = measure()
    print(f" ({time.perf_counter() - began:.1f} s)", flush=True)
    return result
