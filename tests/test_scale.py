"""Scale: the bootstrap draws in chunks with the same seeded result as one big draw, in bounded
memory; a run's streamed results and summary equal those built in memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from llmeval.results import stats
from llmeval.results.stats import mean_ci, paired_delta_ci

VALUES = [((i * 37) % 101) / 100 for i in range(1001)]


def test_mean_ci_keeps_the_values_of_runs_made_before_chunking() -> None:
    # Computed with the former one-draw code (a 2000 x N index array at once).
    assert mean_ci(VALUES) == (0.4999400599400599, 0.4826471028971029, 0.5171141358641358)
    assert mean_ci(VALUES, seed=7) == (0.4999400599400599, 0.48250724275724277, 0.5176645854145855)
    assert mean_ci([0.1, 0.9, 0.5], seed=3) == (0.5, 0.10000000000000002, 0.9)


@pytest.mark.parametrize("n", [2, 3, 7, 1001, 4097])
@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_chunked_draws_are_the_stream_of_one_draw(n: int, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Odd N: Generator.integers takes 32-bit halves of 64-bit words; a chunk must not drop the other half.
    values = np.random.default_rng(n).random(n).tolist()
    rng = np.random.default_rng(11)
    arr = np.asarray(values)
    means = arr[rng.integers(0, n, size=(300, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    monkeypatch.setattr(stats, "CHUNK_DRAWS", chunk)
    assert mean_ci(values, seed=11, resamples=300) == (float(arr.mean()), float(lo), float(hi))
    base = np.random.default_rng(n + 1).random(n).tolist()
    d = arr - np.asarray(base)
    boots = d[np.random.default_rng(3).integers(0, n, size=(300, n))].mean(axis=1)
    np.testing.assert_array_equal(stats.paired_deltas(base, values, seed=3, resamples=300), boots)


def test_bootstrap_memory_does_not_grow_with_resamples_times_n() -> None:
    values = np.random.default_rng(0).random(200_000).tolist()  # one draw would hold 2000 x 200,000 x 16 B = 6.4 GB
    tracemalloc.start()
    try:
        mean_ci(values)
        paired_delta_ci(values, values[::-1], resamples=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000
