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
    assert mean_ci([0.7]) == (0.7, 0.7, 0.7)


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


SCALE_SUITE = """\
name: chunked
targets: [{id: py, python: "chunkedtarget:answer"}]
cases: {cases}
metrics:
  - contains: {value: "refund"}
  - rouge: {types: [rouge1, rougeL], threshold: 0.5}
  - bleu
  - whole_batch
"""

CHUNK_TARGET = '''
def answer(case):
    words = (case.expected or "").split()
    return " ".join(w if (i + len(case.id)) % 4 else "refund" for i, w in enumerate(words))
'''

WHOLE_BATCH = '''
from llmeval import register_metric


@register_metric("whole_batch")
def whole_batch(result):
    """A user metric: never chunked (llmeval cannot know it scores each case alone)."""
    return min(1.0, len(result.output or "") / 80)
'''


def chunked_run(folder, monkeypatch: pytest.MonkeyPatch, chunk: int) -> tuple[list[dict], dict]:
    import json

    import llmeval
    from llmeval.metrics import scoring

    monkeypatch.setattr(scoring, "CHUNK", chunk)
    run = llmeval.evaluate(folder / "suite.yaml", out_dir=folder / f"runs-{chunk}", formats=[])
    lines = [json.loads(x) for x in (run.dir / "results.jsonl").read_text().splitlines()]
    return lines, run.manifest


def test_a_run_scored_chunk_by_chunk_stores_what_one_batch_stores(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "chunkedtarget.py").write_text(CHUNK_TARGET)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "whole_batch.py").write_text(WHOLE_BATCH)
    words = ["refund", "within", "thirty", "days"]
    rows = [{"id": f"c{i:03d}", "input": f"q{i}",
             "expected": " ".join(words[: 1 + i % 4] + ["of", "delivery"] * (i % 3)),
             **({"assert": [{"contains": {"value": "days", "name": "has_days"}}]} if i % 5 == 0 else {})}
            for i in range(53)]
    (tmp_path / "suite.yaml").write_text(SCALE_SUITE.replace("{cases}", json.dumps(rows)))
    one, m1 = chunked_run(tmp_path, monkeypatch, 10_000)
    many, m7 = chunked_run(tmp_path, monkeypatch, 7)
    assert len(one) == len(many) == 53
    for a, b in zip(one, many, strict=True):
        assert (a["case_id"], a["output"], a["passed"]) == (b["case_id"], b["output"], b["passed"])
        assert list(a["scores"]) == list(b["scores"])  # the same keys in the same order
        assert a["scores"] == b["scores"]
    assert list(one[0]["scores"])[:5] == ["contains", "rouge1", "rougeL", "bleu", "whole_batch"]
    assert list(one[0]["scores"])[5:] == ["has_days"]  # and its own assertion, last
    for m in (m1, m7):
        del m["summary"]["py"]["latency_ms"]  # wall-clock times: the only part that may differ
    assert m1["summary"] == m7["summary"]
    assert m1["summary"]["py"]["rougeL"]["n"] == 53 and m1["summary"]["py"]["bleu"]["corpus"] is not None
    assert sum(1 for r in many if r["passed"]) == sum(1 for r in one if r["passed"]) > 0
