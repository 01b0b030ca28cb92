"""Flakiness over epochs (`--epochs N`): a case is flaky when it passes in some epochs and fails in
others; a metric is flaky on a case when its pass/fail differs across epochs. The spread of a
metric on a case is its largest minus its smallest value over the epochs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from llmeval.results.records import Result
from llmeval.results.stats import rounded


@dataclass
class CaseConsistency:
    """One case of one target over its epochs: how many passed, and each metric's spread."""

    case_id: str
    target: str
    epochs: int
    passed: int
    spreads: dict[str, float] = field(default_factory=dict)
    """Metric -> max - min of its values over the epochs (metrics with two or more values)."""
    flaky_metrics: list[str] = field(default_factory=list)
    """Metrics whose pass/fail differs across the epochs."""

    @property
    def flaky(self) -> bool:
        return 0 < self.passed < self.epochs


def _by_case(rs: list[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = defaultdict(list)
    for r in rs:
        out[r.case_id].append(r)
    return out


def consistency(results: list[Result], target: str, keys: list[str]) -> list[CaseConsistency]:
    """Per case of `target` that ran two or more epochs: passes and spreads (an errored epoch fails)."""
    out = []
    for cid, rs in _by_case([r for r in results if r.target == target]).items():
        if len(rs) < 2:
            continue
        c = CaseConsistency(cid, target, len(rs), sum(1 for r in rs if r.passed))
        for key in keys:
            scores = [s for r in rs if (s := r.scores.get(key)) is not None]
            values = [s.value for s in scores if s.value is not None]
            if len(values) >= 2:
                c.spreads[key] = round(max(values) - min(values), 6)
            flags = {s.passed for s in scores if s.passed is not None}
            if len(flags) > 1:
                c.flaky_metrics.append(key)
        out.append(c)
    return out


def target_flakiness(rows: list[CaseConsistency]) -> dict[str, Any] | None:
    """summary[target]["flaky"]: the share of cases that passed in some epochs only, and which."""
    if not rows:
        return None
    flaky = [c.case_id for c in rows if c.flaky]
    return {"rate": rounded(len(flaky) / len(rows)), "n": len(flaky), "of": len(rows), "cases": flaky}


def metric_flakiness(results: list[Result], key: str) -> dict[str, Any] | None:
    """summary[target][metric]["flaky"]: over the cases with two or more scored epochs, the share whose
    pass/fail differs (None when the metric has no pass/fail) and the mean and largest spread."""
    spreads, flaky, with_pass = [], 0, 0
    for rs in _by_case(results).values():
        scores = [s for r in rs if (s := r.scores.get(key)) is not None and s.value is not None]
        if len(scores) < 2:
            continue
        values = [s.value for s in scores if s.value is not None]
        spreads.append(max(values) - min(values))
        flags = [s.passed for s in scores if s.passed is not None]
        if len(flags) >= 2:
            with_pass += 1
            flaky += len(set(flags)) > 1
    if not spreads:
        return None
    return {"rate": rounded(flaky / with_pass) if with_pass else None, "n": flaky, "of": with_pass,
            "spread_mean": rounded(sum(spreads) / len(spreads)), "spread_max": rounded(max(spreads))}
