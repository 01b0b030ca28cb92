"""Score results with the suite's metrics and decide each result's `passed`."""

from __future__ import annotations

from llmeval.errors import LlmevalError
from llmeval.metrics.base import Metric, ScoringContext, metric_error
from llmeval.results.records import Result, Score


async def score_results(results: list[Result], metrics: list[Metric], ctx: ScoringContext) -> None:
    """Fill `scores` and `passed` of every result in place (errored results get no scores)."""
    ok = [r for r in results if r.error is None]
    for r in results:
        r.scores = {}
    for metric in metrics:
        if not ok:
            break
        try:
            per_case = await metric.score_all(ok, ctx)
        except LlmevalError:
            raise  # a user error (missing dependency, bad option): exit 2 with its message
        except Exception:  # one bad case must not lose the batch: score each case on its own
            per_case = [await score_alone(metric, r, ctx) for r in ok]
        for r, scores in zip(ok, per_case, strict=True):
            r.scores.update(scores)
    gated = {k for m in metrics if m.threshold is not None for k in m.keys()}
    for r in results:
        r.passed = case_passed(r, gated)


async def score_alone(metric: Metric, r: Result, ctx: ScoringContext) -> dict[str, Score]:
    """One case scored by itself, after the batch it was in raised; a metric error if it raises too."""
    try:
        [scores] = await metric.score_all([r], ctx)
        return scores
    except LlmevalError:
        raise
    except Exception as e:
        return {k: metric_error(e) for k in metric.keys()}


def case_passed(r: Result, gated: set[str] | None = None) -> bool:
    """A result passes when it has no error, no metric error and no score with a threshold failed.

    A score that does not apply (value None, not an error) neither passes nor fails the case on its
    own; but when the case has scores for thresholded metrics (`gated` keys) and ALL of them are None,
    nothing was checked, so the case does not pass."""
    if r.error is not None or r.output is None:
        return False
    if any(s.passed is False or s.error is not None for s in r.scores.values()):
        return False
    checked = [s for k, s in r.scores.items() if k in (gated or ())]
    return not checked or any(s.value is not None for s in checked)
