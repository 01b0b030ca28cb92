"""Means and confidence intervals (bootstrap over cases, seeded), percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOOTSTRAP_RESAMPLES = 2000
CI_METHOD = "bootstrap-percentile over cases (epochs averaged within a case)"


def mean_ci(values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its 95% percentile-bootstrap interval."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    m = float(arr.mean())
    if arr.size < 2 or float(arr.min()) == float(arr.max()):
        return m, m, m
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(resamples, arr.size))
    means = arr[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return m, float(lo), float(hi)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    f, c = math.floor(k), math.ceil(k)
    return s[f] if f == c else s[f] + (s[c] - s[f]) * (k - f)


def rounded(x: Any, digits: int = 6) -> Any:
    """Round floats for the manifest (keeps JSON readable, loses nothing that matters)."""
    return round(x, digits) if isinstance(x, float) else x
