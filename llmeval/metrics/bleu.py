"""BLEU and chrF with sacrebleu: sentence scores per case, corpus scores from summed statistics."""

from __future__ import annotations

import importlib.util
import os
import threading
from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import field_validator

from llmeval.errors import MissingDependencyError
from llmeval.metrics.base import Metric, MetricOptions, metric_error
from llmeval.metrics.parallel import map_pairs
from llmeval.metrics.text import reference_pairs, references
from llmeval.results.records import Result, Score

# sacrebleu tokenizers that fetch a SentencePiece model over the network on first use.
_DOWNLOADING = {"spm", "flores101", "flores200", "spBLEU-1K"}
_INSTALL = "pip install 'llmeval[reference]'"


_BUILTIN_TOKENIZERS = ("13a", "intl", "zh", "char", "none")


class BleuOptions(MetricOptions):
    tokenize: str = "13a"
    """sacrebleu tokenizer: 13a (default), intl, zh, char, none, ja-mecab, ko-mecab, or a
    SentencePiece one (flores101, flores200, spBLEU-1K) whose model is already cached."""
    lowercase: bool = False
    """Lowercase output and references before matching."""
    smooth_method: Literal["exp", "floor", "add-k", "none"] = "exp"
    """Smoothing for sentence BLEU (sacrebleu's sentence_bleu default: exp)."""
    smooth_value: float | None = None
    """The value for floor (default 0.1) and add-k (default 1) smoothing."""

    @field_validator("tokenize")
    @classmethod
    def _offline_tokenizer(cls, v: str) -> str:
        if v in _BUILTIN_TOKENIZERS:
            return v  # built in and offline: no need to import sacrebleu to load a suite
        if importlib.util.find_spec("sacrebleu") is None:
            return v  # the metric's constructor says how to install it
        from sacrebleu.metrics.bleu import _TOKENIZERS

        if v not in _TOKENIZERS:
            raise ValueError(f"unknown BLEU tokenizer '{v}'; use one of {sorted(_TOKENIZERS)}")
        if v in _DOWNLOADING:
            path = _spm_model_path(v)
            if not os.path.exists(path):
                raise ValueError(
                    f"tokenizer '{v}' needs a SentencePiece model that sacrebleu downloads on first use, "
                    f"and it is not cached at {path}; llmeval does not download at run time. Fetch it once "
                    f"with `python -c \"import sacrebleu; sacrebleu.BLEU(tokenize='{v}')\"` while online, "
                    "or use 13a, intl, zh or char"
                )
        return v


def _spm_model_path(name: str) -> str:
    from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
    from sacrebleu.utils import SACREBLEU_DIR

    key = "flores101" if name == "spm" else name
    return os.path.join(SACREBLEU_DIR, "models", os.path.basename(SPM_MODELS[key]["url"]))


class ChrfOptions(MetricOptions):
    char_order: int = 6
    """Character n-gram order."""
    word_order: int = 0
    """Word n-gram order (2 gives chrF++)."""
    beta: int = 2
    """Weight of recall relative to precision."""
    lowercase: bool = False
    """Lowercase output and references before matching."""
    whitespace: bool = False
    """Keep whitespace in character n-grams."""
    eps_smoothing: bool = False
    """Epsilon smoothing as in chrF++.py and NLTK (sacrebleu's default is effective order)."""


def _unit(score: float) -> float:
    """A sacrebleu score (0-100) as a value in [0, 1]; float noise can give 100.00000000000004."""
    return min(1.0, max(0.0, score / 100.0))


class _SacreMetric(Metric, ABC):
    """Shared scoring: one sacrebleu object for sentences, one for the corpus."""

    requires = frozenset({"expected"})
    cpu_bound = True
    per_case = True  # sentence scores; the corpus score is computed from the outputs in the summary
    raw_name = ""

    def __init__(self, options: MetricOptions) -> None:
        super().__init__(options)
        if importlib.util.find_spec("sacrebleu") is None:
            raise MissingDependencyError(f"{self.kind} needs sacrebleu, which is not installed", hint=_INSTALL)
        self._signatures: dict[int, str] = {}
        self._lock = threading.Lock()
        self._scorers: tuple[Any, Any] | None = None
        if getattr(options, "tokenize", "13a") not in _BUILTIN_TOKENIZERS:
            self._build()  # a tokenizer that needs an extra package fails at load, not mid-run

    def _build(self) -> tuple[Any, Any]:
        """The sentence and corpus sacrebleu objects, made on first use (loading a suite stays light)."""
        if self._scorers is None:
            try:
                self._scorers = (self._make(sentence=True), self._make(sentence=False))
            except ImportError as e:  # ja-mecab / ko-mecab need extra packages; sacrebleu says which
                raise MissingDependencyError(f"{self.kind}: {str(e).strip()}") from None
        return self._scorers

    @property
    def _sentence(self) -> Any:
        return self._build()[0]

    @property
    def _corpus(self) -> Any:
        return self._build()[1]

    @abstractmethod
    def _make(self, sentence: bool) -> Any:
        """The sacrebleu metric object (sentence- or corpus-level settings)."""

    def _details(self, score: Any) -> dict[str, Any]:
        return {}

    def score_one(self, sample: Result) -> Score:
        refs = references(sample)
        if not refs:
            return Score(None, None, "no expected answer")
        return self.score_pairs([(sample.output or "", refs)])[0]

    def score_batch(self, samples: list[Result]) -> list[dict[str, Score]]:
        """Score every sample; many pairs are scored in worker processes (metrics.parallel)."""
        out, todo, pairs = reference_pairs(samples, [self.name])
        for i, sc in zip(todo, map_pairs(self, "score_pairs", pairs), strict=True):
            out[i] = self._apply_threshold({self.name: sc})
        return out

    def score_pairs(self, pairs: list[tuple[str, list[str]]]) -> list[Score]:
        """The sentence score of each (output, references) pair; a pair that raises gets a metric error."""
        out = []
        with self._lock:  # sacrebleu keeps the reference count on the object; targets score in threads
            for hyp, refs in pairs:
                try:
                    res = self._sentence.sentence_score(hyp, refs)
                except Exception as e:  # one bad case must not stop the run; the reason says what broke
                    out.append(metric_error(e))
                    continue
                details = {self.raw_name: res.score, **self._details(res), "signature": self._signature(len(refs))}
                out.append(Score(_unit(res.score), None, None, details))
        return out

    def _signature(self, nrefs: int) -> str:
        # The signature depends on the number of references, which sacrebleu records on the
        # object when it scores; cache one string per count.
        sig = self._signatures.get(nrefs)
        if sig is None:
            sig = self._signatures[nrefs] = self._sentence.get_signature().format()
        return sig

    def corpus(self, samples: list[Result]) -> dict[str, dict[str, Any]]:
        """The corpus score from statistics summed over every scored case (not a mean of
        sentence scores); cases without output or reference are skipped and counted."""
        hyps: list[str] = []
        refs: list[list[str]] = []
        for s in samples:
            r = references(s)
            if s.output is not None and r:
                hyps.append(s.output)
                refs.append(r)
        skipped = len(samples) - len(hyps)
        if not hyps:
            return {self.name: {"corpus": None, "n": 0, "skipped": skipped, "reason": "no scored outputs"}}
        # sacrebleu wants K reference streams of N segments each (never N lists of K: it would
        # silently score only the first K outputs). None pads cases with fewer references.
        k = max(len(r) for r in refs)
        streams = [[r[j] if j < len(r) else None for r in refs] for j in range(k)]
        with self._lock:
            res = self._corpus.corpus_score(hyps, streams)
            signature = self._corpus.get_signature().format()
        return {
            self.name: {
                "corpus": _unit(res.score),
                self.raw_name: res.score,
                **self._details(res),
                "signature": signature,
                "n": len(hyps),
                "skipped": skipped,
            }
        }


class Bleu(_SacreMetric):
    """Sentence BLEU per case (sacrebleu sentence_bleu defaults), corpus BLEU in the summary."""

    description = "sacrebleu BLEU /100 (sentence per case, corpus in summary); options: tokenize, lowercase"
    Options = BleuOptions
    raw_name = "bleu"

    def _make(self, sentence: bool) -> Any:
        from sacrebleu.metrics import BLEU

        o: Any = self.options
        return BLEU(
            lowercase=o.lowercase,
            tokenize=o.tokenize,
            smooth_method=o.smooth_method,
            smooth_value=o.smooth_value,
            # sentence_bleu's default; corpus BLEU has enough n-grams not to need it
            effective_order=sentence,
        )

    def _details(self, score: Any) -> dict[str, Any]:
        return {
            "precisions": list(score.precisions),
            "bp": score.bp,
            "counts": list(score.counts),
            "totals": list(score.totals),
            "sys_len": score.sys_len,
            "ref_len": score.ref_len,
        }


class Chrf(_SacreMetric):
    """Sentence chrF per case, corpus chrF in the summary (sacrebleu)."""

    description = "sacrebleu chrF /100 (sentence per case, corpus in summary); options: char_order, word_order, beta"
    Options = ChrfOptions
    raw_name = "chrf"

    def _make(self, sentence: bool) -> Any:
        from sacrebleu.metrics import CHRF

        o: Any = self.options
        return CHRF(
            char_order=o.char_order,
            word_order=o.word_order,
            beta=o.beta,
            lowercase=o.lowercase,
            whitespace=o.whitespace,
            eps_smoothing=o.eps_smoothing,
        )
