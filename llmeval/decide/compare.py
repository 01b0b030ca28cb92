"""Baseline vs candidate: paired per-metric deltas with bootstrap CIs, McNemar on pass/fail,
corpus BLEU by resampling its sufficient statistics, and the cases that moved most."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from llmeval.results.records import Result
from llmeval.results.runlog import Run
from llmeval.results.summary import case_value, metric_keys

Z_975, Z_80 = 1.959963984540054, 0.8416212335729143
METHOD = {
    "pairing": "results paired by (case id, target); epochs averaged within a case",
    "ci": "paired percentile bootstrap over cases of mean(candidate - baseline)",
    "verdict": "regressed / improved when the 95% CI of the delta excludes 0; pass_rate: McNemar exact p < 0.05",
    "mde": "(z_0.975 + z_0.80) * sd(paired differences) / sqrt(n): smallest true delta a two-sided 5% test "
           "detects with 80% power (normal approximation)",
    "corpus": "corpus BLEU: sacrebleu's paired bootstrap test (paired_bs) on the cases' summed n-gram statistics, "
              "same draws and p-value: p = (#{|d| - mean|d| > |observed d|} + 1) / (R + 1); the CI is the "
              "percentile interval of the resampled d (candidate - baseline)",
    "p": "mean deltas: two-sided bootstrap p = 2 * min(share of resampled deltas <= 0, share >= 0); 0 with "
         "p_bound 1/(R+1) when no resample crossed 0, printed as < 1/(R+1)",
    "pass": "a case passes a metric when it passes in more than half of its epochs (McNemar's flips); the "
            "pass_rate delta pairs each case's share of passing epochs, an errored epoch counting as failed",
    "multiplicity": "each metric is tested on its own at 5%: with many metrics, expect some false alarms",
}
REGRESSED, IMPROVED, NO_CHANGE, NOT_COMPARABLE = "regressed", "improved", "no significant change", "not comparable"


@dataclass(frozen=True)
class McNemar:
    """Discordant pass/fail pairs: b passed in the baseline only, c in the candidate only."""

    b: int
    c: int
    p: float


@dataclass(frozen=True)
class MetricDelta:
    """One (target, metric) comparison; kind is "mean", "pass_rate" or "corpus"."""

    target: str
    metric: str
    kind: str
    n: int
    base: float | None
    cand: float | None
    delta: float | None
    ci95: tuple[float, float] | None
    p: float | None
    verdict: str
    mde: float | None = None
    mcnemar: McNemar | None = None
    note: str | None = None
    p_bound: float | None = None
    """1/(resamples + 1) when no bootstrap resample crossed 0 (`p` is then 0.0): the p-value is below
    this bound, and reports print it as `< 1/(R+1)`."""


@dataclass(frozen=True)
class CaseChange:
    """One (case, target) present in both runs: pass flips and per-metric deltas."""

    case_id: str
    target: str
    base_passed: bool | None
    cand_passed: bool | None
    delta: float | None
    """Mean over metrics of (candidate - baseline), over the metrics both runs scored."""
    metric_deltas: dict[str, float]
    base_output: str | None
    cand_output: str | None
    input: Any = None

    @property
    def change(self) -> str:
        """regressed / improved / unchanged: a pass flip decides, else the sign of the mean delta."""
        if self.base_passed and self.cand_passed is False:
            return REGRESSED
        if self.base_passed is False and self.cand_passed:
            return IMPROVED
        if self.delta is not None and abs(self.delta) > 1e-9:
            return REGRESSED if self.delta < 0 else IMPROVED
        return "unchanged"


@dataclass
class Comparison:
    """Everything `llmeval compare` reports; `to_dict()` is its JSON form."""

    base_run_id: str
    cand_run_id: str
    suite: str
    seed: int
    resamples: int
    metrics: list[MetricDelta]
    cases: list[CaseChange]
    only_in_base: list[tuple[str, str]] = field(default_factory=list)
    only_in_cand: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    level: float = 0.95

    def metric(self, target: str, metric: str, kind: str | None = None) -> MetricDelta | None:
        """The comparison of one metric on one target (the mean row unless kind says otherwise)."""
        for m in self.metrics:
            if m.target == target and m.metric == metric and (kind is None or m.kind == kind):
                return m
        return None

    def regressed(self) -> list[CaseChange]:
        """Cases that got worse, pass->fail flips first, then by the largest drop."""
        out = [c for c in self.cases if c.change == REGRESSED]
        return sorted(out, key=lambda c: (not (c.base_passed and c.cand_passed is False), c.delta or 0.0))

    def improved(self) -> list[CaseChange]:
        """Cases that got better, fail->pass flips first, then by the largest gain."""
        out = [c for c in self.cases if c.change == IMPROVED]
        return sorted(out, key=lambda c: (not (c.base_passed is False and c.cand_passed), -(c.delta or 0.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_run_id": self.base_run_id, "cand_run_id": self.cand_run_id, "suite": self.suite,
            "seed": self.seed, "resamples": self.resamples, "level": self.level, "method": METHOD,
            "metrics": [asdict(m) for m in self.metrics],
            "regressed": [_case_dict(c) for c in self.regressed()],
            "improved": [_case_dict(c) for c in self.improved()],
            "n_paired_cases": len(self.cases),
            "only_in_base": [list(k) for k in self.only_in_base],
            "only_in_cand": [list(k) for k in self.only_in_cand],
            "notes": self.notes,
        }


def _case_dict(c: CaseChange) -> dict[str, Any]:
    return {"case_id": c.case_id, "target": c.target, "base_passed": c.base_passed, "cand_passed": c.cand_passed,
            "delta": c.delta, "metric_deltas": c.metric_deltas}


def compare_runs(base: Run, cand: Run, seed: int = 0, resamples: int = 10_000) -> Comparison:
    """Compare two runs case by case; a pure function of the two runs (no I/O, no calls)."""
    b_groups, c_groups = _group(base.results), _group(cand.results)
    paired = sorted(set(b_groups) & set(c_groups))
    targets = sorted({t for _, t in paired}, key=_order(cand.targets or base.targets))
    b_keys, c_keys = metric_keys(base.manifest), metric_keys(cand.manifest)
    keys = [k for k in c_keys if k in b_keys]
    notes = [f"metric '{k}' is only in the {w} run; not compared" for w, ks, other in
             (("baseline", b_keys, c_keys), ("candidate", c_keys, b_keys)) for k in ks if k not in other]
    for t in sorted(set(base.targets) ^ set(cand.targets)):
        notes.append(f"target '{t}' is only in the {'baseline' if t in base.targets else 'candidate'} run")
    jobs: list[Callable[[], MetricDelta]] = []
    for tid in targets:
        pairs = [(b_groups[k], c_groups[k]) for k in paired if k[1] == tid]
        notes += _error_notes(tid, keys, pairs)
        jobs.append(partial(_pass_rate_delta, tid, pairs, seed, resamples))
        jobs += [partial(_mean_delta, tid, key, pairs, seed, resamples) for key in keys]
        jobs += [partial(corpus_bleu_delta, tid, key, pairs, options, seed, resamples)
                 for key, options in _bleu_metrics(cand.manifest, keys)]
    # Each delta draws from its own seeded generator, so the values do not depend on the threads;
    # numpy's draws and means release the GIL, so a large comparison uses every core.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1, len(jobs)))) as pool:
        deltas = list(pool.map(lambda job: job(), jobs))
    cases = [_case_change(b_groups[k], c_groups[k], keys) for k in paired]
    return Comparison(
        base_run_id=base.run_id, cand_run_id=cand.run_id, suite=str(cand.manifest.get("suite", {}).get("name", "")),
        seed=seed, resamples=resamples, metrics=deltas, cases=cases,
        only_in_base=sorted(set(b_groups) - set(c_groups)), only_in_cand=sorted(set(c_groups) - set(b_groups)),
        notes=notes,
    )


def _error_notes(tid: str, keys: list[str], pairs: list[tuple[list[Result], list[Result]]]) -> list[str]:
    """A note per metric with metric errors on paired cases: those cases drop out of its comparison."""
    def failed(rs: list[Result], key: str) -> bool:
        return all((s := r.scores.get(key)) is not None and s.error is not None for r in rs)

    out = []
    for key in keys:
        nb, nc = sum(failed(b, key) for b, _ in pairs), sum(failed(c, key) for _, c in pairs)
        if nb or nc:
            out.append(f"{key} on {tid}: no value (metric error) on {nc} paired case(s) of the candidate and {nb} "
                       f"of the baseline; they are left out of its comparison")
    return out


def _order(ids: list[str]) -> Any:
    return lambda t: (ids.index(t) if t in ids else len(ids), t)


def _group(results: list[Result]) -> dict[tuple[str, str], list[Result]]:
    out: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in results:
        out[(r.case_id, r.target)].append(r)
    return out


def case_passed(rs: list[Result], key: str | None = None) -> bool | None:
    """Whether a case passes (one metric, or overall when key is None) in most of its epochs."""
    if key is None:
        flags = [bool(r.passed) for r in rs]
    else:
        flags = [s.passed for r in rs if (s := r.scores.get(key)) is not None and s.passed is not None]
    if not flags:
        return None
    return sum(flags) * 2 > len(flags)


def mde(diffs: list[float]) -> float | None:
    """Minimum detectable effect at 80% power, two-sided 5%, from the paired differences' SD."""
    n = len(diffs)
    if n < 2:
        return None
    m = sum(diffs) / n
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / (n - 1))
    return (Z_975 + Z_80) * sd / math.sqrt(n)


def verdict_from_ci(lo: float, hi: float) -> str:
    if lo > 0:
        return IMPROVED
    if hi < 0:
        return REGRESSED
    return NO_CHANGE


def _mean_delta(tid: str, key: str, pairs: list[tuple[list[Result], list[Result]]], seed: int,
                resamples: int) -> MetricDelta:
    from llmeval.results.stats import mcnemar_exact, paired_delta_ci

    base, cand, b, c = [], [], 0, 0
    for brs, crs in pairs:
        bv, cv = case_value(brs, key), case_value(crs, key)
        if bv is not None and cv is not None:
            base.append(bv)
            cand.append(cv)
        bp, cp = case_passed(brs, key), case_passed(crs, key)
        if bp is not None and cp is not None:
            b += bp and not cp
            c += cp and not bp
    has_pass = any(case_passed(brs, key) is not None for brs, _ in pairs)
    mc = McNemar(b, c, mcnemar_exact(b, c)) if has_pass else None
    if len(base) < 2:
        return MetricDelta(tid, key, "mean", len(base), _mean(base), _mean(cand), None, None, None, NOT_COMPARABLE,
                           mcnemar=mc, note="fewer than 2 cases scored in both runs")
    delta, lo, hi, p = paired_delta_ci(base, cand, seed, resamples)
    note = "fewer than 10 paired cases: the bootstrap CI is rough" if len(base) < 10 else None
    return MetricDelta(tid, key, "mean", len(base), _mean(base), _mean(cand), delta, (lo, hi), p,
                       verdict_from_ci(lo, hi), mde([cv - bv for bv, cv in zip(base, cand, strict=True)]), mc, note,
                       p_bound=1 / (resamples + 1) if p == 0.0 else None)


def _pass_rate_delta(tid: str, pairs: list[tuple[list[Result], list[Result]]], seed: int,
                     resamples: int) -> MetricDelta:
    from llmeval.results.stats import mcnemar_exact, paired_delta_ci

    # The same per-case values as a max_drop gate on pass_rate (llmeval.results.summary.case_value).
    base = [case_value(brs, "pass_rate") or 0.0 for brs, _ in pairs]
    cand = [case_value(crs, "pass_rate") or 0.0 for _, crs in pairs]
    flips = [(bool(case_passed(brs)), bool(case_passed(crs))) for brs, crs in pairs]
    b = sum(1 for x, y in flips if x and not y)
    c = sum(1 for x, y in flips if y and not x)
    mc = McNemar(b, c, mcnemar_exact(b, c))
    if len(base) < 2:
        return MetricDelta(tid, "pass_rate", "pass_rate", len(base), _mean(base), _mean(cand), None, None, None,
                           NOT_COMPARABLE, mcnemar=mc, note="fewer than 2 paired cases")
    delta, lo, hi, p = paired_delta_ci(base, cand, seed, resamples)
    # Pass/fail is discrete: McNemar's exact test decides, the bootstrap CI is shown for scale.
    verdict = NO_CHANGE if mc.p >= 0.05 else (REGRESSED if b > c else IMPROVED)
    return MetricDelta(tid, "pass_rate", "pass_rate", len(base), _mean(base), _mean(cand), delta, (lo, hi), mc.p,
                       verdict, mde([y - x for x, y in zip(base, cand, strict=True)]), mc)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _bleu_metrics(manifest: dict[str, Any], keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [(m["name"], m) for m in manifest.get("metrics", []) if m.get("kind") == "bleu" and m.get("name") in keys]


_STAT_KEYS = ("counts", "totals", "sys_len", "ref_len")
COMPARED_DETAILS = frozenset({*_STAT_KEYS, "not_applicable"})
"""The keys of a score's details a comparison reads (corpus BLEU's n-gram statistics)."""


def _bleu_stats(rs: list[Result], key: str) -> list[float] | None:
    """A case's BLEU sufficient statistics (matches, totals per order, lengths), summed over epochs."""
    total: list[float] | None = None
    for r in rs:
        s = r.scores.get(key)
        if s is None or s.value is None or not all(k in s.details for k in _STAT_KEYS):
            return None
        row = [*s.details["counts"], *s.details["totals"], s.details["sys_len"], s.details["ref_len"]]
        total = row if total is None else [a + b for a, b in zip(total, row, strict=True)]
    return total


def corpus_bleu_delta(tid: str, key: str, pairs: list[tuple[list[Result], list[Result]]], options: dict[str, Any],
                      seed: int, resamples: int) -> MetricDelta:
    """Corpus BLEU of both runs over the paired cases, and sacrebleu's paired bootstrap test
    (sacrebleu.significance._paired_bs_test, Koehn 2004 as in Moses) on the cases' n-gram statistics:
    the same resamples of cases, the same statistic and p-value, so with one seed `p` equals sacrebleu's.
    The 95% CI is the percentile interval of the resampled differences (candidate - baseline)."""
    import numpy as np

    rows_b, rows_c = [], []
    for brs, crs in pairs:
        sb, sc = _bleu_stats(brs, key), _bleu_stats(crs, key)
        if sb is not None and sc is not None:
            rows_b.append(sb)
            rows_c.append(sc)
    n = len(rows_b)
    if n < 2 or len({len(r) for r in rows_b + rows_c}) != 1:
        return MetricDelta(tid, key, "corpus", n, None, None, None, None, None, NOT_COMPARABLE,
                           note="corpus BLEU not compared: the results carry no n-gram statistics in details")
    width = len(rows_b[0])
    score = _bleu_scorer(options, (width - 2) // 2)
    # The observed scores from exact integer sums (sacrebleu's _aggregate_and_compute) ...
    base_raw = score([sum(col) for col in zip(*rows_b, strict=True)])
    cand_raw = score([sum(col) for col in zip(*rows_c, strict=True)])
    # ... the resampled ones from float32 sums, as sacrebleu computes them.
    stats = np.asarray([*rows_b, *rows_c], dtype=np.float32).reshape(2, n, width)
    rng = np.random.default_rng(seed)
    boot_b, boot_c = np.empty(resamples), np.empty(resamples)
    chunk = max(1, 200_000 // n)
    for start in range(0, resamples, chunk):
        m = min(resamples, start + chunk) - start
        # the same draws as sacrebleu's rng.choice(n, size=(resamples, n)), taken in chunks
        idx = rng.integers(0, n, size=(m, n))
        sums = stats[:, idx].sum(axis=2, dtype=np.float32)  # (2, m, width)
        for i in range(m):
            boot_b[start + i], boot_c[start + i] = score(sums[0, i]), score(sums[1, i])
    diffs = (boot_c - boot_b) / 100.0
    lo, hi = (float(x) for x in np.quantile(diffs, [0.025, 0.975]))
    # sacrebleu: |d| per resample, centred on its mean; p = (#{centred > |observed d|} + 1) / (R + 1)
    sample = np.abs(boot_c - boot_b)
    p = float((np.sum(sample - sample.mean() > abs(cand_raw - base_raw)) + 1) / (resamples + 1))
    base_v, cand_v = _unit(base_raw), _unit(cand_raw)
    return MetricDelta(tid, key, "corpus", n, base_v, cand_v, cand_v - base_v, (lo, hi), p, verdict_from_ci(lo, hi),
                       note=f"corpus BLEU over {n} paired cases ({options.get('tokenize', '13a')} tokenizer); "
                            "p: sacrebleu's paired bootstrap test")


def _unit(raw: float) -> float:
    return min(1.0, max(0.0, raw / 100.0))


def _bleu_scorer(options: dict[str, Any], order: int) -> Any:
    """sacrebleu's own corpus formula (BLEU.compute_bleu) on summed statistics (matches, totals per
    order, then lengths, as llmeval stores them), as sacrebleu's 0-100 score."""
    from sacrebleu.metrics.bleu import BLEU

    method = options.get("smooth_method", "exp")
    value = options.get("smooth_value")

    def score(row: Any) -> float:
        # Slices of the row as sacrebleu passes them (ints, or a float32 array for resamples); a copy,
        # since add-k smoothing adds to the counts in place.
        counts, totals = list(row[:order]), list(row[order: 2 * order])
        res = BLEU.compute_bleu(counts, totals, int(row[2 * order]), int(row[2 * order + 1]), smooth_method=method,
                                smooth_value=value, effective_order=False, max_ngram_order=order)
        return float(res.score)

    return score


def _case_change(brs: list[Result], crs: list[Result], keys: list[str]) -> CaseChange:
    md = {}
    for k in keys:
        bv, cv = case_value(brs, k), case_value(crs, k)
        if bv is not None and cv is not None:
            md[k] = cv - bv
    first_b, first_c = min(brs, key=lambda r: r.epoch), min(crs, key=lambda r: r.epoch)
    return CaseChange(first_c.case_id, first_c.target, case_passed(brs), case_passed(crs),
                      sum(md.values()) / len(md) if md else None, md, first_b.output, first_c.output, first_c.input)
