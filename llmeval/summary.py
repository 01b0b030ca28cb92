"""Aggregate results into run.json's `summary`: per target, per metric and overall."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from llmeval.metrics.base import Metric
from llmeval.records import Result
from llmeval.stats import mean_ci, percentile, rounded


def build_summary(results: list[Result], metrics: list[Metric], target_ids: list[str], seed: int = 0) -> dict[str, Any]:
    """summary[target] = {metric: {mean, ci95, n, n_null, pass_rate, corpus?}, pass_rate, errors, ...}."""
    by_target: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_target[r.target].append(r)
    summary: dict[str, Any] = {}
    for tid in target_ids:
        rs = by_target.get(tid, [])
        entry: dict[str, Any] = {}
        for m in metrics:
            corpus = m.corpus([r for r in rs if r.error is None]) if rs else {}
            for key in m.keys():
                entry[key] = metric_summary(rs, key, seed)
                if key in corpus:
                    entry[key].update({k: rounded(v) for k, v in corpus[key].items()})
        entry.update(target_totals(rs))
        summary[tid] = entry
    return summary


def metric_summary(results: list[Result], key: str, seed: int = 0) -> dict[str, Any]:
    """Mean and bootstrap 95% CI over cases (epochs averaged within a case first), n, pass rate."""
    per_case: dict[str, list[float]] = defaultdict(list)
    passes: list[bool] = []
    n_null = 0
    for r in results:
        s = r.scores.get(key)
        if s is None:
            continue
        if s.value is None:
            n_null += 1
            continue
        per_case[r.case_id].append(s.value)
        if s.passed is not None:
            passes.append(s.passed)
    values = [sum(v) / len(v) for v in per_case.values()]
    n = sum(len(v) for v in per_case.values())
    if not values:
        return {"mean": None, "ci95": None, "n": 0, "n_null": n_null, "pass_rate": None}
    mean, lo, hi = mean_ci(values, seed)
    return {
        "mean": rounded(mean),
        "ci95": [rounded(lo), rounded(hi)],
        "n": n,
        "n_null": n_null,
        "pass_rate": rounded(sum(passes) / len(passes)) if passes else None,
    }


def target_totals(rs: list[Result]) -> dict[str, Any]:
    """Per-target pass rate, errors, latency percentiles, tokens and cost."""
    lat = [r.latency_ms for r in rs if r.latency_ms is not None and r.error is None]
    costs = [r.cost_usd for r in rs if r.cost_usd is not None]
    return {
        "n": len(rs),
        "pass_rate": rounded(sum(1 for r in rs if r.passed) / len(rs)) if rs else None,
        "errors": sum(1 for r in rs if r.error is not None),
        "cached": sum(1 for r in rs if r.cached),
        "latency_ms": {"p50": rounded(percentile(lat, 50), 3), "p95": rounded(percentile(lat, 95), 3)},
        "tokens": {"prompt": sum(r.usage.prompt for r in rs), "completion": sum(r.usage.completion for r in rs)},
        "cost_usd": rounded(sum(costs), 8) if costs else None,
    }
