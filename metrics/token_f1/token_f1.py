"""Token F1: the SQuAD answer-overlap metric, as a Hugging Face `evaluate` metric script.

Loads by path with no download: `evaluate.load("metrics/token_f1")`, or in a suite
`hf_evaluate: {name: metrics/token_f1}`.
"""

from __future__ import annotations

import collections
import re
import string

import datasets
import evaluate

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
    title = "{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text",
    author = "Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy",
    booktitle = "Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing",
    year = "2016",
    pages = "2383--2392",
}
"""

_DESCRIPTION = """\
Token F1 between a prediction and its reference(s), as in the official SQuAD evaluation: both
are lowercased, stripped of punctuation and of the articles a/an/the, and split on whitespace;
F1 is the harmonic mean of the precision and recall of the shared tokens (counted with
multiplicity). With several references the best one counts. Two empty answers score 1.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (strings).
    references: list of reference answers, one string or a list of strings per prediction.
    per_example: return one F1 per prediction instead of the mean.
Returns:
    token_f1: the mean F1 in [0, 1] (or the list of per-example F1 with per_example=True).
Examples:
    >>> metric = evaluate.load("metrics/token_f1")
    >>> metric.compute(predictions=["the cat sat"], references=[["a cat sat on the mat"]])
    {'token_f1': 0.6666666666666666}
"""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD's answer normalisation, returned as tokens."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the shared tokens of one prediction and one reference."""
    pred, gold = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not gold:
        return float(pred == gold)
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenF1(evaluate.Metric):
    """SQuAD token F1."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, per_example=False):  # type: ignore[no-untyped-def]
        scores = [
            max(token_f1(p, r) for r in ([refs] if isinstance(refs, str) else refs))
            for p, refs in zip(predictions, references, strict=True)
        ]
        if per_example:
            return {"token_f1": scores}
        return {"token_f1": sum(scores) / len(scores) if scores else 0.0}
