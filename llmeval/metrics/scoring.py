"""Score results with the suite's metrics and decide each result's `passed`."""

from __future__ import annotations

from llmeval.errors import LlmevalError
from llmeval.metrics.base import Metric, ScoringContext, metric_error
from llmeval.results.records import Result, Score


async def score_results(results: list[Result], metrics: list[Metric], ctx: ScoringContext,
                        case_metrics: dict[str, list[Metric]] | None = None) -> None:
    """Fill `scores` and `passed` of every result in place (errored results get no scores):
    `metrics` score every result, `case_metrics[case_id]` (a case's assertions) only that case's."""
    ok = [r for r in results if r.error is None]
    for r in results:
        r.scores = {}
    jobs: list[tuple[Metric, list[Result]]] = [(m, ok) for m in metrics]
    own: dict[int, tuple[Metric, list[Result]]] = {}
    for r in ok:
        for m in (case_metrics or {}).get(r.case_id, []):
            own.setdefault(id(m), (m, []))[1].append(r)
    jobs += list(own.values())
    for metric, samples in jobs:
        if not samples:
            continue
        try:
            per_case = await metric.score_all(samples, ctx)
        except LlmevalError:
            raise  # a user error (missing dependency, bad option): exit 2 with its message
        except Exception:  # one bad case must not lose the batch: score each case on its own
            per_case = [await score_alone(metric, r, ctx) for r in samples]
        for r, scores in zip(samples, per_case, strict=True):
            r.scores.update(scores)
    gated = {k for m, _ in jobs if m.threshold is not None for k in m.keys()}
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
    nothing was checked, so the case does not pass. A score that does not apply to the case
    (`details.not_applicable`) is not a check that was missed."""
    if r.error is not None or r.output is None:
        return False
    if any(s.passed is False or s.error is not None for s in r.scores.values()):
        return False
    checked = [s for k, s in r.scores.items() if k in (gated or ()) and not s.details.get("not_applicable")]
    return not checked or any(s.value is not None for s in checked)
