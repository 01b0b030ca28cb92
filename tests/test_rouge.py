"""ROUGE checked against the rouge_score unit tests and reference implementation."""

from __future__ import annotations

from typing import Any

import pytest

from llmeval.metrics.registry import build_metric
from llmeval.results.records import Score
from tests.metrichelpers import result, score_all

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
