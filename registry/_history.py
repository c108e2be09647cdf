"""Metric history in chunks, and the running summary of a metric.

One row holds many points of one metric as packed arrays.

One row per point (MLflow's layout) makes the table and its index grow with every value
logged, and caps durable throughput at the database's per-row cost (about 60-120k rows/s
here, against a 200k points/s target). A chunk row holds up to ``CHUNK_POINTS`` points of
one metric: steps as little-endian int64, values and times as little-endian float64 (NaN
and infinities are stored as they are). Search and sort use ``metric_summary``, never these
blobs, so nothing is lost for queries.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

from registry.entities import MetricSummary

__all__ = ["CHUNK_POINTS", "Chunk", "Columns", "Summary", "decode", "encode", "split"]

CHUNK_POINTS = 10_000
_SWAP = sys.byteorder != "little"

Columns = tuple[array, array, array]  # steps ('q'), values ('d'), times ('d')
# key, seq, steps, values, times: one chunk of one metric's history
Chunk = tuple[str, int, Sequence[int], Sequence[float], Sequence[float]]


def encode(steps: Sequence[int], values: Sequence[float],
           times: Sequence[float]) -> tuple[bytes, bytes, bytes]:
    """Pack three equally long columns into little-endian blobs."""
    packed = []
    for code, column in (("q", steps), ("d", values), ("d", times)):
        arr = array(code, column)
        if _SWAP:
            arr.byteswap()
        packed.append(arr.tobytes())
    return packed[0], packed[1], packed[2]


def decode(steps: bytes, values: bytes, times: bytes) -> Columns:
    """Unpack blobs written by :func:`encode`."""
    out = []
    for code, blob in (("q", steps), ("d", values), ("d", times)):
        arr = array(code)
        arr.frombytes(bytes(blob))
        if _SWAP:
            arr.byteswap()
        out.append(arr)
    return out[0], out[1], out[2]


def split(steps: Sequence[int], values: Sequence[float], times: Sequence[float],
          size: int = CHUNK_POINTS):
    """Yield (steps, values, times) slices of at most ``size`` points."""
    for start in range(0, len(steps), size):
        end = start + size
        yield steps[start:end], values[start:end], times[start:end]


class Summary:
    """Running summary of one metric; min and max ignore non-finite values."""

    __slots__ = ("count", "last", "last_step", "last_time", "max", "min", "nonfinite")

    def __init__(self) -> None:
        self.count = self.nonfinite = 0
        self.last: float | None = None
        self.last_step, self.last_time = -(2**63), 0.0
        self.min: float | None = None
        self.max: float | None = None

    def add(self, steps: Sequence[int], values: Sequence[float], times: Sequence[float]) -> int:
        """Fold in a batch; returns the index of its first non-finite value, or -1."""
        finite = [v for v in values if v - v == 0.0]  # False for NaN and both infinities
        self.count += len(values)
        if len(finite) < len(values):
            self.nonfinite += len(values) - len(finite)
        if finite:
            low, high = min(finite), max(finite)
            self.min = low if self.min is None or low < self.min else self.min
            self.max = high if self.max is None or high > self.max else self.max
        top = max(steps)
        if top >= self.last_step:
            i = len(steps) - 1 if steps[-1] == top else _last_index(steps, top)
            self.last, self.last_step, self.last_time = values[i], top, times[i]
        if len(finite) == len(values):
            return -1
        return next(i for i, v in enumerate(values) if v - v != 0.0)

    def freeze(self, key: str) -> MetricSummary:
        return MetricSummary(key, self.last, self.last_step, self.last_time, self.min, self.max,
                             self.count, self.nonfinite)


def _last_index(items: Sequence[int], value: int) -> int:
    return len(items) - 1 - list(reversed(items)).index(value)
