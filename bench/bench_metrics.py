"""Throughput of the reference metrics on synthetic ~30-word pairs; prints a table.

    python bench/bench_metrics.py [--pairs 10000] [--bert-pairs 1000] [--no-bert]

Each row scores every pair through llmeval's metric API (build_metric + score_all/corpus),
so the numbers include llmeval's own overhead, not just the library's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from llmeval.metrics.base import ScoringContext  # noqa: E402
from llmeval.metrics.registry import build_metric  # noqa: E402
from llmeval.results.records import Result  # noqa: E402

WORDS = (
    "the a of to and in is was for on that with as it by at from this be are have has had not but "
    "report market company government people year week city water system policy result data model "
    "value price energy school health court police team game music film book research study group "
    "said announced reported increased decreased agreed rejected opened closed started finished "
    "new old large small early late public private local national global major minor strong weak"
).split()


# For a run of non-ASCII text (which takes the Python tokenizer path of the unicode tokenizer).
ACCENTED = "café naïve résumé über año façade déjà größe élève crème señor jalapeño".split()


def make_pairs(n: int, seed: int = 0, accented: bool = False) -> list[Result]:
    """n (reference, output) pairs of about 30 words; outputs share ~60% of their words."""
    rng = random.Random(seed)
    words = WORDS + ACCENTED if accented else WORDS
    out = []
    for i in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(25, 35))]
        hyp = [w if rng.random() < 0.6 else rng.choice(words) for w in ref]
        cut = len(ref) // 2  # two sentences, so rougeLsum has something to split
        ref_text = " ".join(ref[:cut]).capitalize() + ". " + " ".join(ref[cut:]).capitalize() + "."
        hyp_text = " ".join(hyp[:cut]).capitalize() + ". " + " ".join(hyp[cut:]).capitalize() + "."
        out.append(Result(str(i), "bench", 0, "q", ref_text, None, hyp_text, None))
    return out


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def score(metric: Any, samples: list[Result]) -> Any:
    return asyncio.run(metric.score_all(samples, ScoringContext()))


def rouge_score_reference(samples: list[Result]) -> None:
    """The pure-Python rouge-score package on the same pairs, for comparison."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    for s in samples:
        scorer.score(str(s.expected), str(s.output))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--bert-pairs", type=int, default=1_000)
    ap.add_argument("--no-bert", action="store_true", help="skip BERTScore (needs torch)")
    ap.add_argument("--reference", action="store_true", help="also time pure-Python rouge-score")
    args = ap.parse_args()
    samples = make_pairs(args.pairs)
    rows: list[tuple[str, int, float]] = []

    rouge = build_metric("rouge", {})
    rows.append(("rouge (4 types, unicode tokenizer)", len(samples), timed(lambda: score(rouge, samples))))
    accented = make_pairs(args.pairs, accented=True)
    rows.append(("rouge (4 types, unicode, accented text)", len(accented), timed(lambda: score(rouge, accented))))
    original = build_metric("rouge", {"tokenizer": "rouge_score"})
    rows.append(("rouge (4 types, rouge_score tokenizer)", len(samples), timed(lambda: score(original, samples))))
    stemmed = build_metric("rouge", {"use_stemmer": True})
    rows.append(("rouge (4 types, unicode + stemmer)", len(samples), timed(lambda: score(stemmed, samples))))
    if args.reference:
        rows.append(("rouge-score package (reference)", len(samples), timed(lambda: rouge_score_reference(samples))))
    bleu = build_metric("bleu", {})
    rows.append(("sentence BLEU", len(samples), timed(lambda: score(bleu, samples))))
    rows.append(("corpus BLEU", len(samples), timed(lambda: bleu.corpus(samples))))
    chrf = build_metric("chrf", {})
    rows.append(("sentence chrF", len(samples), timed(lambda: score(chrf, samples))))

    if not args.no_bert:
        bert_samples = samples[: args.bert_pairs]
        bert = build_metric("bertscore", {})
        load = timed(lambda: score(bert, bert_samples[:1]))  # loads the model once
        rows.append(("bertscore: model load + 1 pair", 0, load))
        rows.append(("bertscore (default model, CPU)", len(bert_samples), timed(lambda: score(bert, bert_samples))))

    print(f"{'metric':<40} {'pairs':>7} {'seconds':>9} {'pairs/s':>10}")
    for name, n, secs in rows:
        rate = f"{n / secs:>10.0f}" if n else f"{'-':>10}"
        print(f"{name:<40} {n or '':>7} {secs:>9.2f} {rate}")
    print(f"\n{os.cpu_count()} CPU cores; rouge engine: {_rouge_engine()}")


def _rouge_engine() -> str:
    try:
        import rouge_score_rs

        return f"rouge-score-rs {rouge_score_rs.__version__}"
    except ImportError:
        return "rouge-score (pure Python)"


if __name__ == "__main__":
    main()
