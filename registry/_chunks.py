"""Metric history in chunks: one row holds many points of one metric as packed arrays.

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

__all__ = ["CHUNK_POINTS", "Columns", "decode", "encode", "split"]

CHUNK_POINTS = 10_000
_SWAP = sys.byteorder != "little"

Columns = tuple[array, array, array]  # steps ('q'), values ('d'), times ('d')


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
