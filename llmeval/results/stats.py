"""Means and confidence intervals (bootstrap over cases, seeded), percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOOTSTRAP_RESAMPLES = 2000
CI_METHOD = "bootstrap-percentile over cases (epochs averaged within a case)"


def mean_ci(values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its 95% percentile-bootstrap interval."""
    if len(values) < 2:  # nothing to resample (nor numpy to import for it: a one-case run starts faster)
        m = float(values[0]) if len(values) else math.nan
        return m, m, m
    import numpy as np

    arr = np.asarray(values, dtype=float)
    m = float(arr.mean())
    if float(arr.min()) == float(arr.max()):
        return m, m, m
    means = _resampled_means(arr, np.random.default_rng(seed), resamples)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return m, float(lo), float(hi)


CHUNK_DRAWS = 1_000_000
"""Indices drawn per chunk of resamples (8 MB of int64 and 8 MB of gathered floats): a bootstrap over N
cases holds about 16 * max(N, CHUNK_DRAWS) bytes at a time, whatever the number of resamples."""


def _resampled_means(arr: Any, rng: Any, resamples: int) -> Any:
    """The mean of each of `resamples` resamples of `arr` (with replacement), drawn in row chunks.
    Generator.integers keeps its 32-bit buffer in the bit generator between calls, so chunked draws
    are the same stream as one (resamples x N) draw: the same seed gives the same means."""
    import numpy as np

    out = np.empty(resamples)
    rows = max(1, CHUNK_DRAWS // max(1, arr.size))
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        out[start:stop] = arr[rng.integers(0, arr.size, size=(stop - start, arr.size))].mean(axis=1)
    return out


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


def paired_deltas(base: Sequence[float], cand: Sequence[float], seed: int = 0, resamples: int = 10_000) -> Any:
    """Bootstrap distribution (numpy array) of mean(cand - base) over paired cases."""
    import numpy as np

    d = np.asarray(cand, dtype=float) - np.asarray(base, dtype=float)
    return _resampled_means(d, np.random.default_rng(seed), resamples)


def paired_delta_ci(base: Sequence[float], cand: Sequence[float], seed: int = 0, resamples: int = 10_000,
                    level: float = 0.95) -> tuple[float, float, float, float]:
    """(delta, lo, hi, p): mean paired difference cand - base, its percentile-bootstrap CI at `level`,
    and a two-sided bootstrap p-value for delta == 0."""
    import numpy as np

    if len(base) != len(cand) or not base:
        raise ValueError("paired_delta_ci needs two equally long, non-empty sequences")
    delta = float(np.mean(np.asarray(cand, dtype=float) - np.asarray(base, dtype=float)))
    boots = paired_deltas(base, cand, seed, resamples)
    alpha = 1 - level
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    if float(boots.min()) == float(boots.max()):
        p = 1.0 if delta == 0 else 0.0
    else:
        p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return delta, float(lo), float(hi), p


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (pass->fail) and c (fail->pass)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
