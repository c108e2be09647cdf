"""One ONNX file measured with ONNX Runtime on this machine's CPU, in a child process.

The child (``python -m zoo._profile_ort SPEC``) imports only numpy and onnxruntime, so its
memory is the session's: the peak RSS is reset (Linux ``/proc/self/clear_refs``) just before
the session is created and read after the timed runs. Each batch size is warmed up, then timed
run by run with ``perf_counter`` around ``session.run``: at least ``MIN_REPEATS`` runs and
``MIN_SECONDS`` of them unless ``repeats`` fixes the count. The parent gets one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zoo.errors import ProfileError

__all__ = ["MIN_REPEATS", "MIN_SECONDS", "measure", "summarise", "timed_runs"]

MIN_REPEATS, MIN_SECONDS, MAX_SECONDS = 50, 2.0, 20.0
WARMUP_RUNS = 10
EVAL_BATCH = 32


def measure(model: Path, *, batches: list[int], threads: int, repeats: int | None = None,
            images: Path | None = None, labels: Path | None = None, timeout: float = 1800,
            child: str = "zoo._profile_ort", runtime: str = "ONNX Runtime") -> dict[str, Any]:
    """Latency and throughput of ``model`` at each batch size, its peak memory and (given
    ``images``/``labels`` .npy files) its accuracy, measured in a fresh child process
    (``python -m CHILD SPEC``: this module, or another runtime's, such as TFLite's)."""
    spec = {"model": str(model), "batches": batches, "threads": threads, "repeats": repeats,
            "images": str(images) if images else None, "labels": str(labels) if labels else None}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run([sys.executable, "-m", child, json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ProfileError(str(model), f"the measurement took more than {timeout:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProfileError(str(model), f"{runtime} could not run it: {tail}")
    return json.loads(lines[-1])


def timed_runs(run: Any, repeats: int | None) -> list[float]:
    """Seconds per call of ``run()`` after warm-up: ``repeats`` calls, else at least
    ``MIN_REPEATS`` and ``MIN_SECONDS`` worth (at most ``MAX_SECONDS``)."""
    clock = time.perf_counter
    for _ in range(WARMUP_RUNS):
        run()
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        run()
        times.append(clock() - t0)
        if repeats is not None:
            if len(times) >= repeats:
                return times
        elif (len(times) >= MIN_REPEATS and clock() - start >= MIN_SECONDS) \
                or clock() - start >= MAX_SECONDS:
            return times


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of sorted values."""
    pos = (len(sorted_ms) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_ms) - 1)
    return sorted_ms[low] + (sorted_ms[high] - sorted_ms[low]) * (pos - low)


def summarise(times: list[float], batch: int) -> dict[str, Any]:
    """p50/p90/p99 latency in ms and images per second of timed runs."""
    ms = sorted(t * 1000 for t in times)
    return {"batch": batch, "repeats": len(times), "p50": _percentile(ms, 0.5),
            "p90": _percentile(ms, 0.9), "p99": _percentile(ms, 0.99),
            "throughput": batch * len(times) / sum(times)}


# -- the child process ----------------------------------------------------------------------

def _rss_kb(field: str) -> int | None:
    """VmRSS or VmHWM (peak) of this process in KiB, from /proc/self/status."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_increase_mb(base_kb: int | None, reset: bool) -> float | None:
    import resource

    peak = _rss_kb("VmHWM") if reset else None
    if peak is None:  # no reset: the process's lifetime peak (an upper bound)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return None if base_kb is None else max(0, peak - base_kb) / 1024


def _session(model: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _input_shape(session: Any) -> tuple[str, list[int]]:
    spec = session.get_inputs()[0]
    dims = [d if isinstance(d, int) and d > 0 else None for d in spec.shape[1:]]
    if None in dims:
        raise SystemExit(f"input {spec.name!r} has no fixed size ({spec.shape}); export it "
                         "with a fixed image size")
    return spec.name, dims


def _accuracy(session: Any, name: str, images: str, labels: str) -> tuple[float, int]:
    import numpy as np

    x, y = np.load(images, mmap_mode="r"), np.load(labels)
    correct = 0
    for start in range(0, len(y), EVAL_BATCH):
        batch = np.ascontiguousarray(x[start:start + EVAL_BATCH], dtype=np.float32)
        logits = session.run(None, {name: batch})[0]
        correct += int((logits.argmax(axis=1) == y[start:start + EVAL_BATCH]).sum())
    return correct / len(y), len(y)


def _main(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    reset = _reset_peak()
    base = _rss_kb("VmRSS")
    started = time.perf_counter()
    session = _session(spec["model"], spec["threads"])
    load_s = time.perf_counter() - started
    name, dims = _input_shape(session)
    rng = np.random.default_rng(0)
    results = []
    for batch in spec["batches"]:
        x = rng.standard_normal((batch, *dims), dtype=np.float32)
        feed = {name: x}
        results.append(summarise(timed_runs(lambda f=feed: session.run(None, f),
                                            spec["repeats"]), batch))
    out = {"batches": results, "peak_memory_mb": _peak_increase_mb(base, reset),
           "session_load_s": load_s, "input_shape": dims, "onnxruntime": ort.__version__}
    if spec.get("images"):
        out["accuracy"], out["n_eval"] = _accuracy(session, name, spec["images"],
                                                   spec["labels"])
    return out


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1]))))
