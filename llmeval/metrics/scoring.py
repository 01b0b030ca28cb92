"""Score results with the suite's metrics and decide each result's `passed`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmeval.errors import LlmevalError
from llmeval.metrics.base import Metric, ScoringContext, metric_error
from llmeval.results.records import Result, Score

CHUNK = 10_000
"""Results per chunk when a run scores chunk by chunk (see `score_results`)."""

Job = tuple[Metric, list[Result]]


async def score_results(results: list[Result], metrics: list[Metric], ctx: ScoringContext,
                        case_metrics: dict[str, list[Metric]] | None = None,
                        sink: Callable[[list[Result]], Any] | None = None, chunk: int | None = None) -> None:
    """Fill `scores` and `passed` of every result in place (errored results get no scores):
    `metrics` score every result, `case_metrics[case_id]` (a case's assertions) only that case's.

    With a `sink`, results are handed to it `chunk` (default CHUNK) at a time once fully scored (the run writes them
    and keeps only what its summary needs, so a large run does not hold every score at once): metrics
    whose score of a case depends on that case alone (`per_case`) score chunk by chunk; the others
    (a batch-wide idf, judges sharing one concurrency pool, user code) still see every result in one
    batch, first. Values, score order and `passed` are the same either way."""
    ok = [r for r in results if r.error is None]
    for r in results:
        r.scores = {}
    jobs: list[Job] = [(m, ok) for m in metrics]
    own: dict[int, Job] = {}
    for r in ok:
        for m in (case_metrics or {}).get(r.case_id, []):
            own.setdefault(id(m), (m, []))[1].append(r)
    jobs += list(own.values())
    gated = {k for m, _ in jobs if m.threshold is not None for k in m.keys()}
    order = list(dict.fromkeys(k for m, _ in jobs for k in m.keys()))
    chunk = chunk or CHUNK
    if sink is None or len(results) <= chunk:
        await _score_jobs(jobs, ctx)
        _finish(results, gated, None)
        if sink is not None:
            sink(results)
        return
    await _score_jobs([j for j in jobs if not j[0].per_case], ctx)
    later = [j for j in jobs if j[0].per_case]
    for start in range(0, len(results), chunk):
        part = results[start:start + chunk]
        keys = {id(r) for r in part}
        await _score_jobs([(m, [r for r in rs if id(r) in keys]) for m, rs in later], ctx)
        _finish(part, gated, order)
        sink(part)


async def _score_jobs(jobs: list[Job], ctx: ScoringContext) -> None:
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


def _finish(results: list[Result], gated: set[str], order: list[str] | None) -> None:
    """Scores in suite order (with `order`: whichever metric scored first), then each result's `passed`."""
    for r in results:
        if order is not None and len(r.scores) > 1:
            r.scores = {k: r.scores[k] for k in order if k in r.scores} | r.scores
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
