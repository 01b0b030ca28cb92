"""Score results with the suite's metrics and decide each result's `passed`."""

from __future__ import annotations

from llmeval.metrics.base import Metric, ScoringContext
from llmeval.records import Result, Score


async def score_results(results: list[Result], metrics: list[Metric], ctx: ScoringContext) -> None:
    """Fill `scores` and `passed` of every result in place (errored results get no scores)."""
    ok = [r for r in results if r.error is None]
    for r in results:
        r.scores = {}
    for metric in metrics:
        if not ok:
            break
        per_case = await metric.score_all(ok, ctx)
        for r, scores in zip(ok, per_case, strict=True):
            r.scores.update(scores)
    for r in results:
        r.passed = case_passed(r)


def case_passed(r: Result) -> bool:
    """A result passes when it has no error and no score with a threshold failed.

    A score that could not be computed (value None) neither passes nor fails the case; the
    summary counts it."""
    if r.error is not None or r.output is None:
        return False
    return all(s.passed is not False for s in r.scores.values())


def null_score(reason: str) -> Score:
    """A score that could not be computed, with the reason."""
    return Score(None, None, reason)
