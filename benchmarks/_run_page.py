"""The run page's measurement for ``bench_dashboard.py`` (issue 16): a run with 20 metrics of
100,000 points each and 200 artifacts, recorded through ``registry.start_run`` into a fresh
SQLite workspace; the anchor, a bare Streamlit page (routed like the dashboard, at ``/run``)
drawing one chart (``st.line_chart``) of one of those metrics' 100,000 points, read from a
file; and the clock: the page's own (``performance.now()``, zero at navigation start), read on
the first animation frame at which the page's first chart has been drawn (its canvas or SVG
laid out with a width), in a new browser context each time."""

from __future__ import annotations

import math
import os
import random
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ANCHOR_APP", "CHART_DRAWN", "RunPagePlan", "curve_reads", "record_big_run"]

ANCHOR_APP = """\
import numpy as np
import pandas as pd
import streamlit as st


def run():
    points = np.load("points.npy")
    st.line_chart(pd.DataFrame({"step": points[0], "value": points[1]}), x="step", y="value")


st.set_page_config(page_title="anchor", layout="wide")
st.navigation([st.Page(run, title="Run", url_path="run", default=True)]).run()
"""
# Polled on every animation frame (see bench_dashboard.SEEN).
CHART_DRAWN = """() => {
    const drawn = document.querySelector(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg.marks');
    return drawn && drawn.getBoundingClientRect().width > 0 ? performance.now() : null;
}"""


@dataclass(frozen=True)
class RunPagePlan:
    metrics: int = 20
    points: int = 100_000
    artifacts: int = 200
    reps: int = 7

    @classmethod
    def quick(cls) -> RunPagePlan:
        return cls(points=20_000, reps=3)


def record_big_run(folder: Path, plan: RunPagePlan) -> tuple[str, str]:
    """(store URL, run id) of a fresh workspace in ``folder`` holding one big run: ``metrics``
    histories of ``points`` (one of them with NaN and infinite points), ``artifacts`` files (a
    confusion-matrix PNG among them); the anchor's points are saved as ``points.npy``."""
    import numpy as np

    import registry
    from registry.config import load_workspace

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cairn.toml").write_text('owner = "bench"\n[runs]\nsystem_interval = 0\n')
    before = Path.cwd()
    os.chdir(folder)
    try:
        ws = load_workspace()
        run = registry.start_run(project="bench", name="big-run", workspace=ws,
                                 params={"lr": 1e-3, "model": {"backbone": "resnet50"}})
        keys = ["val/accuracy", "val/loss", *(f"train/metric_{i:02d}"
                                              for i in range(plan.metrics - 2))]
        for step in range(plan.points):
            values = {k: math.sin(step / 997 + i) + i for i, k in enumerate(keys)}
            if step % 5_000 == 4_999:
                values["val/loss"] = math.nan if step % 10_000 else math.inf
            run.log_metrics(values, step=step)
        _artifacts(run, folder / "files", plan.artifacts)
        run.end()
        steps = np.arange(plan.points, dtype=float)
        np.save(folder / "points.npy", np.stack([steps, np.sin(steps / 997)]))
        return ws.store_url, run.id
    finally:
        os.chdir(before)


def _artifacts(run, folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    picture = folder / "confusion.png"
    picture.write_bytes(_png(200, 200))
    run.log_artifact(picture, name="plots/confusion.png")
    rng = random.Random(0)
    for i in range(count - 1):
        path = folder / f"file-{i:03d}.bin"
        path.write_bytes(rng.randbytes(1_000 + 97 * i))
        run.log_artifact(path, name=f"outputs/shard-{i:03d}.bin")


def _png(width: int, height: int) -> bytes:
    """A gradient as an 8-bit grey PNG, without Pillow."""
    rows = b"".join(b"\x00" + bytes((x * 255 // width + y) % 256 for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def curve_reads(store_url: str, run_id: str, keys: int, reps: int = 5) -> float:
    """Median seconds of the page's curve read (``dashboard.reads.run_curves``: the chunks of
    ``keys`` metrics read and thinned as the page thins them), without Streamlit's cache."""
    from dashboard import reads
    from dashboard._curves import buckets_for
    from registry.store import SqlStore

    store = SqlStore(store_url, readonly=True, migrate=False)
    try:
        pk, record = reads.run_of(store, run_id)
        chosen = sorted(record.metrics)[:keys]
        times = []
        for _ in range(reps):
            began = time.perf_counter()
            reads.run_curves(store, pk, chosen, "step", buckets_for(keys))
            times.append(time.perf_counter() - began)
        return sorted(times)[len(times) // 2]
    finally:
        store.close()
