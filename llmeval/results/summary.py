"""Aggregate results into run.json's `summary`: per target, per metric and overall.

Counts: `n` counts results (cases x epochs), `n_cases` counts distinct cases; means and CIs are over
cases (epochs averaged within a case first). Per metric, `n_null` counts results with a null value,
`n_errors` those whose value could not be computed (metric errors, a subset of `n_null`), `n_missing`
the results that have no score and should have one: metric errors plus results without an output (the
target call failed); not-applicable scores are not missing. Per target, `metric_errors` counts the
(result, metric) pairs with a metric error, what `--max-errors` adds to the target errors.
`tokens` and `cost_usd` include cached answers: they describe the answers scored, not what this
run paid (`cached` says how many were cached)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from llmeval.results.flaky import consistency, metric_flakiness, target_flakiness
from llmeval.results.records import Result
from llmeval.results.stats import mean_ci, percentile, rounded


class ScoredMetric(Protocol):
    """What the summary needs of a metric (llmeval.metrics.base.Metric is one): the score names it
    writes and its corpus-level values, if any (corpus BLEU aggregates itself)."""

    def keys(self) -> list[str]: ...

    def corpus(self, samples: list[Result]) -> dict[str, dict[str, Any]]: ...


def metric_keys(manifest: dict[str, Any]) -> list[str]:
    """Score names in suite order (a multi-key metric such as rouge gives several)."""
    return [k for m in manifest.get("metrics", []) for k in (m.get("keys") or [m.get("name")])]


def case_value(rs: list[Result], key: str) -> float | None:
    """One case's value from its results (its epochs): the mean of the metric's non-null values;
    for `pass_rate` the share of epochs that passed, an errored epoch counting as failed."""
    if key == "pass_rate":
        return sum(1.0 for r in rs if r.passed) / len(rs) if rs else None
    vals = [s.value for r in rs if (s := r.scores.get(key)) is not None and s.value is not None]
    return sum(vals) / len(vals) if vals else None


def per_case_values(results: list[Result], target: str, key: str) -> dict[str, float]:
    """case_id -> case_value for one target: what compare and max_drop gates pair across runs."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.target == target:
            groups[r.case_id].append(r)
    return {cid: v for cid, rs in groups.items() if (v := case_value(rs, key)) is not None}


def build_summary(results: list[Result], metrics: list[ScoredMetric], target_ids: list[str],
                  seed: int = 0) -> dict[str, Any]:
    """summary[target] = {metric: {mean, ci95, n, n_cases, n_null, n_errors, n_missing, pass_rate, corpus?,
    flaky?}, pass_rate, errors, metric_errors, ..., flaky?}. A per-case metric (a case's assertion,
    `scope: case`) is summarised over the cases that assert it; `flaky` appears when cases ran two or
    more epochs."""
    by_target: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_target[r.target].append(r)
    summary: dict[str, Any] = {}
    for tid in target_ids:
        rs = by_target.get(tid, [])
        entry: dict[str, Any] = {}
        repeated = len(rs) > len({r.case_id for r in rs})
        for m in metrics:
            corpus = m.corpus([r for r in rs if r.error is None]) if rs else {}
            # A case's assertion is summarised (and missed) over the cases that assert it only.
            cases = set(getattr(m, "cases", ())) if getattr(m, "scope", "suite") == "case" else None
            mine = rs if cases is None else [r for r in rs if r.case_id in cases]
            for key in m.keys():
                entry[key] = metric_summary(mine, key, seed)
                if key in corpus:
                    entry[key].update({k: rounded(v) for k, v in corpus[key].items()})
                if getattr(m, "scope", "suite") == "case":
                    entry[key]["scope"] = "case"
                if repeated and (flaky := metric_flakiness(rs, key)) is not None:
                    entry[key]["flaky"] = flaky
        entry.update(target_totals(rs))
        entry["metric_errors"] = metric_error_count(rs, metrics)
        if repeated and (flaky := target_flakiness(consistency(rs, tid, []))) is not None:
            entry["flaky"] = flaky
        summary[tid] = entry
    return summary


def metric_summary(results: list[Result], key: str, seed: int = 0) -> dict[str, Any]:
    """Mean and bootstrap 95% CI over cases (epochs averaged within a case first); `n` counts the
    scored results, `n_cases` the cases the mean and CI are over; pass rate over scored results;
    the null, error and missing counts (and the first error's reason) as the module docstring says."""
    per_case: dict[str, list[float]] = defaultdict(list)
    passes: list[bool] = []
    n_null = n_errors = n_missing = 0
    first_error = None
    for r in results:
        s = r.scores.get(key)
        if s is None:
            n_missing += r.error is not None  # the target call failed: nothing to score
            continue
        if s.value is None:
            n_null += 1
            if s.error is not None:
                n_errors += 1
                first_error = first_error or s.reason
            n_missing += not s.not_applicable
            continue
        per_case[r.case_id].append(s.value)
        if s.passed is not None:
            passes.append(s.passed)
    values = [sum(v) / len(v) for v in per_case.values()]
    n = sum(len(v) for v in per_case.values())
    counts: dict[str, Any] = {"n_null": n_null, "n_errors": n_errors, "n_missing": n_missing}
    if first_error is not None:
        counts["first_error"] = first_error
    if not values:
        return {"mean": None, "ci95": None, "n": 0, "n_cases": 0, **counts, "pass_rate": None}
    mean, lo, hi = mean_ci(values, seed)
    return {
        "mean": rounded(mean),
        "ci95": [rounded(lo), rounded(hi)],
        "n": n,
        "n_cases": len(values),
        **counts,
        "pass_rate": rounded(sum(passes) / len(passes)) if passes else None,
    }


def metric_error_count(results: list[Result], metrics: list[ScoredMetric]) -> int:
    """(result, metric) pairs whose score could not be computed; a multi-key metric counts once."""
    return sum(1 for r in results for m in metrics
               if any((s := r.scores.get(k)) is not None and s.error is not None for k in m.keys()))


def target_totals(rs: list[Result]) -> dict[str, Any]:
    """Per-target pass rate, errors, latency percentiles, tokens and cost; `n` counts results
    (cases x epochs), `n_cases` distinct cases; tokens and cost include cached answers."""
    lat = [r.latency_ms for r in rs if r.latency_ms is not None and r.error is None]
    costs = [r.cost_usd for r in rs if r.cost_usd is not None]
    return {
        "n": len(rs),
        "n_cases": len({r.case_id for r in rs}),
        "pass_rate": rounded(sum(1 for r in rs if r.passed) / len(rs)) if rs else None,
        "errors": sum(1 for r in rs if r.error is not None),
        "cached": sum(1 for r in rs if r.cached),
        "latency_ms": {"p50": rounded(percentile(lat, 50), 3), "p95": rounded(percentile(lat, 95), 3)},
        "tokens": {"prompt": sum(r.usage.prompt for r in rs), "completion": sum(r.usage.completion for r in rs)},
        "cost_usd": rounded(sum(costs), 8) if costs else None,
    }
