"""The statistics behind ``compare_groups``, in pure Python (the registry does not depend on
SciPy): Student's t quantile, Welch's interval for a difference of means, and a seeded
percentile bootstrap of the same difference."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist, fmean, stdev

__all__ = ["bootstrap_interval", "t_cdf", "t_quantile", "welch_interval"]

_TINY = 1e-300
_NORMAL_DF = 1e7  # beyond this many degrees of freedom t is the normal distribution


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (any positive real)."""
    if df >= _NORMAL_DF:
        return NormalDist().cdf(t)
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t such that P(T <= t) = p: the CDF inverted by bisection (to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if df >= _NORMAL_DF:
        return NormalDist().inv_cdf(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2.0
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2.0


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95
                   ) -> tuple[float, float, float]:
    """(low, high, degrees of freedom) of the interval for mean(b) - mean(a), by Welch's t
    (unequal variances). Each side needs at least two values."""
    difference = fmean(b) - fmean(a)
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return difference, difference, math.inf
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return difference - half, difference + half, df


def bootstrap_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95, *,
                       resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of mean(b) - mean(a), each side resampled with
    replacement; seeded, so the same values always give the same interval."""
    rng = random.Random(seed)
    na, nb = len(a), len(b)

    def resampled(values: Sequence[float], n: int) -> float:
        return math.fsum(rng.choices(values, k=n)) / n

    differences = sorted(resampled(b, nb) - resampled(a, na) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    low = differences[math.floor(tail * (resamples - 1))]
    high = differences[math.ceil((1.0 - tail) * (resamples - 1))]
    return low, high
