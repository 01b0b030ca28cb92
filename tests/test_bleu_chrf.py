"""BLEU and chrF checked against sacrebleu's own published vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeval.metrics.registry import build_metric
from llmeval.results.records import Result, Score
from tests.metrichelpers import result, score_all

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
