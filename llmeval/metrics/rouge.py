"""ROUGE (rouge-score semantics): n-gram and LCS overlap with the expected answer, max over
references, with a Unicode-aware tokenizer by default."""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from llmeval.errors import MissingDependencyError
from llmeval.metrics.base import Metric, MetricOptions
from llmeval.metrics.parallel import map_pairs
from llmeval.metrics.text import UnicodeTokenizer, reference_pairs, split_sentences
from llmeval.results.records import Result, Score

_INSTALL = "pip install 'llmeval[reference]'"
_TYPE_RE = re.compile(r"^rouge([1-9]|L|Lsum)$")


class RougeOptions(MetricOptions):
    types: list[str] = Field(["rouge1", "rouge2", "rougeL", "rougeLsum"], json_schema_extra={
        "items": {"type": "string", "pattern": "^(rouge[1-9]|rougeL|rougeLsum)$"}, "minItems": 1, "uniqueItems": True})
    """Which ROUGE scores to write, each under its own name: rouge1..rouge9, rougeL, rougeLsum."""
    measure: Literal["f", "precision", "recall"] = "f"
    """The value of each score; the other two are always in `details`."""
    tokenizer: Literal["unicode", "rouge_score"] = "unicode"
    """`unicode`: words in any script, characters for CJK and Thai. `rouge_score`: the original
    tokenizer, which drops every non-ASCII character; use it to compare with published numbers."""
    use_stemmer: bool = False
    """Porter-stem English words longer than three letters before matching."""
    split_sentences: bool = True
    """For rougeLsum, break text without newlines into sentences at . ! ? 。 etc. (otherwise
    rougeLsum of a one-line text equals rougeL)."""

    @field_validator("types")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not _TYPE_RE.match(t)]
        if bad:
            raise ValueError(f"unknown ROUGE type(s) {bad}; use rouge1..rouge9, rougeL or rougeLsum")
        if not v or len(set(v)) != len(v):
            raise ValueError("types must be a non-empty list without repeats")
        return v


def _rouge_scorer_module() -> Any:
    # rouge-score-rs is a bit-identical Rust port of rouge-score (tests check parity); fall
    # back to the pure-Python reference when it is not installed.
    try:
        from rouge_score_rs import rouge_scorer
    except ImportError:
        from rouge_score import rouge_scorer
    return rouge_scorer


class _Encoder:
    """Rewrite text as our tokens' ids ("t0 t1 ...", one line per line of the text)."""

    def __init__(self, tokenizer: UnicodeTokenizer) -> None:
        self.tokenize = tokenizer.tokenize
        self.ids: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        ids = self.ids
        lines = []
        for line in text.split("\n"):
            out = []
            for tok in self.tokenize(line):
                i = ids.get(tok)
                if i is None:
                    i = ids[tok] = f"t{len(ids)}"
                out.append(i)
            lines.append(" ".join(out))
        return "\n".join(lines)


class Rouge(Metric):
    """rouge1/rouge2/rougeL/rougeLsum of the output against the expected answer(s)."""

    description = "ROUGE n-gram/LCS overlap with expected (rouge-score); options: types, tokenizer, use_stemmer"
    requires = frozenset({"expected"})
    Options = RougeOptions
    cpu_bound = True
    per_case = True

    def __init__(self, options: MetricOptions) -> None:
        super().__init__(options)
        o: Any = options
        if not any(importlib.util.find_spec(m) for m in ("rouge_score_rs", "rouge_score")):
            raise MissingDependencyError("rouge needs rouge-score, which is not installed", hint=_INSTALL)
        self.types: list[str] = list(o.types)
        self._keys = [t if o.name is None else f"{o.name}_{t}" for t in self.types]
        self._scorers: tuple[Any, Any] | None = None

    def keys(self) -> list[str]:
        return list(self._keys)

    def _get_scorers(self) -> tuple[Any, Any]:
        """rouge-score with its own tokenizer (native in rouge-score-rs), and one for text we
        tokenized already (our tokens, stemmed if asked, written as ASCII ids)."""
        if self._scorers is None:
            o: Any = self.options
            rouge_scorer = _rouge_scorer_module()
            self._scorers = (
                rouge_scorer.RougeScorer(self.types, use_stemmer=o.use_stemmer),
                rouge_scorer.RougeScorer(self.types, use_stemmer=False),
            )
        return self._scorers

    def _rouge_triples(self, targets: list[str], preds: list[str], encode: bool) -> list[dict[str, Any]]:
        """rouge-score's Score triples for each (target, prediction) pair, in one batch."""
        o: Any = self.options
        own, pretokenized = self._get_scorers()
        if encode:
            # Our tokens, each written as an ASCII id that rouge-score's tokenizer keeps as it is,
            # one line per sentence: the scorer then sees exactly our tokens and sentences, and
            # the whole batch stays native. (On ASCII text the unicode tokenizer gives exactly
            # rouge-score's tokens, stemmed or not, so pure-ASCII batches skip this step.)
            encoder = _Encoder(UnicodeTokenizer(o.use_stemmer))
            targets, preds = [encoder(t) for t in targets], [encoder(p) for p in preds]
            own = pretokenized
        if hasattr(own, "score_batch"):  # rouge-score-rs: native, parallel, without the GIL
            return list(own.score_batch(targets, preds))
        return [own.score(t, p) for t, p in zip(targets, preds, strict=True)]

    def score_one(self, sample: Result) -> dict[str, Score]:
        return self.score_batch([sample])[0]

    def score_batch(self, samples: list[Result]) -> list[dict[str, Score]]:
        """Score every sample; with the pure-Python rouge-score, many pairs are scored in worker
        processes (metrics.parallel)."""
        o: Any = self.options
        results, todo, pairs = reference_pairs(samples, self.keys())
        # Decided once for the whole batch, so that every chunk of a pool takes the same path.
        encode = o.tokenizer == "unicode" and not all(out.isascii() and all(r.isascii() for r in refs)
                                                       for out, refs in pairs)
        if hasattr(self._get_scorers()[0], "score_batch"):
            # rouge-score-rs scores a batch on every core itself; a pool only adds the cost of
            # sending the scores back (measured: slower, bench/bench_metrics.py --pool).
            per_pair = self.score_pairs(pairs, encode)
        else:
            per_pair = map_pairs(self, "score_pairs", pairs, encode)
        for i, scores in zip(todo, per_pair, strict=True):
            results[i] = self._apply_threshold(scores)
        return results

    def score_pairs(self, pairs: list[tuple[str, list[str]]], encode: bool) -> list[dict[str, Score]]:
        """The scores of each (output, references) pair: all pairs go to the scorer in one batch."""
        o: Any = self.options
        prep = split_sentences if o.split_sentences and "rougeLsum" in self.types else (lambda t: t)
        targets: list[str] = []
        preds: list[str] = []
        spans: list[tuple[int, int]] = []
        for output, refs in pairs:
            out = prep(output)
            spans.append((len(targets), len(targets) + len(refs)))
            targets.extend(prep(r) for r in refs)
            preds.extend([out] * len(refs))
        triples = self._rouge_triples(targets, preds, encode)
        return [self._best(triples[a:b]) for a, b in spans]

    def _best(self, per_ref: list[dict[str, Any]]) -> dict[str, Score]:
        """For each type, the reference with the highest F (rouge-score's score_multi rule)."""
        o: Any = self.options
        out: dict[str, Score] = {}
        for key, t in zip(self._keys, self.types, strict=True):
            idx = max(range(len(per_ref)), key=lambda i: per_ref[i][t].fmeasure)
            sc = per_ref[idx][t]
            value = {"f": sc.fmeasure, "precision": sc.precision, "recall": sc.recall}[o.measure]
            details: dict[str, Any] = {
                "precision": sc.precision,
                "recall": sc.recall,
                "fmeasure": sc.fmeasure,
                "tokenizer": o.tokenizer,
                "stemmer": o.use_stemmer,
            }
            if len(per_ref) > 1:
                details["reference_index"] = idx
            out[key] = Score(float(value), None, None, details)
        return out
