"""The metric protocol: per-case scoring, optional corpus aggregation, typed options."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from llmeval.results.records import Result, Score


class MetricOptions(BaseModel):
    """Options every metric accepts; each metric extends this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = None
    """Pass when the value is >= threshold (values are in [0, 1], higher is better)."""
    name: str | None = None
    """Report this metric under another name (e.g. two `contains` checks side by side)."""


@dataclass
class ScoringContext:
    """What a metric may use while scoring: the judge, the suite's folders, run-level notes."""

    suite_dir: Path = field(default_factory=Path.cwd)
    metrics_dir: Path | None = None
    judge: Any = None
    seed: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    """Run-level facts a metric wants in run.json (e.g. G-Eval's generated steps), by metric name."""
    models: Any = None
    """Where batched model steps run: None for this process; on a Ray cluster, the executor's model
    host (`async call(metric, method, *args)`: the metric rebuilt on an actor, its model loaded once)."""


async def run_model_step(ctx: ScoringContext, metric: Metric, method: str, *args: Any) -> Any:
    """`metric.<method>(*args)`, a batched model step (BERTScore, NLI, embeddings): in a thread of
    this process, or on the metric's model actor when the run has a model host."""
    if ctx.models is not None:
        return await ctx.models.call(metric, method, *args)
    return await asyncio.to_thread(getattr(metric, method), *args)


class Metric:
    """A scorer built from suite options. Subclasses set `Options` and implement `score_one`
    (sync, per case) or override `score_all` (async, batched: BERTScore, judges)."""

    Options: ClassVar[type[MetricOptions]] = MetricOptions
    requires: ClassVar[frozenset[str]] = frozenset()
    """What a case must have: any of "expected", "contexts", "judge"."""
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_threshold: ClassVar[float | None] = None
    cpu_bound: ClassVar[bool] = False
    """True when score_all should run off the event loop (pure-Python scoring of many cases)."""

    def __init__(self, options: MetricOptions) -> None:
        self.options = options
        self.name = options.name or self.kind
        self.threshold = options.threshold if options.threshold is not None else self.default_threshold

    def keys(self) -> list[str]:
        """The score names this metric writes into each result (e.g. rouge1, rougeL)."""
        return [self.name]

    def config(self) -> dict[str, Any]:
        """The metric's configuration as recorded in run.json."""
        return {"kind": self.kind, "name": self.name, **self.options.model_dump(exclude_none=True)}

    def score_one(self, sample: Result) -> Score | dict[str, Score]:
        """Score one result; return a Score, or a dict of Scores for multi-key metrics."""
        raise TypeError(f"{type(self).__name__} must implement score_one or score_all")

    async def score_all(self, samples: list[Result], ctx: ScoringContext) -> list[dict[str, Score]]:
        """Score every sample; the default calls `score_one` for each (in a thread if cpu_bound)."""
        if self.cpu_bound and len(samples) > 200:
            return await asyncio.to_thread(self._score_list, samples)
        return self._score_list(samples)

    def _score_list(self, samples: list[Result]) -> list[dict[str, Score]]:
        out = []
        for s in samples:
            if s.output is None:
                out.append({k: Score(None, None, "no output (target error)") for k in self.keys()})
                continue
            try:
                r = self.score_one(s)
            except Exception as e:  # one bad case must not stop the run; the reason says what broke
                out.append({k: metric_error(e) for k in self.keys()})
                continue
            out.append(self._apply_threshold(r if isinstance(r, dict) else {self.name: r}))
        return out

    def _apply_threshold(self, scores: dict[str, Score]) -> dict[str, Score]:
        for sc in scores.values():
            if sc.passed is None and sc.value is not None and self.threshold is not None:
                sc.passed = sc.value >= self.threshold
        return scores

    def corpus(self, samples: list[Result]) -> dict[str, dict[str, Any]]:
        """Corpus-level values by key (e.g. {"bleu": {"corpus": 0.48, "signature": ...}})."""
        return {}

    async def aclose(self) -> None:
        """Release models or clients held by the metric."""


def metric_error(e: Exception) -> Score:
    """The null score recorded when a metric raised on one case."""
    return Score(None, None, f"metric error: {type(e).__name__}: {e}")


class NegatedMetric(Metric):
    """`not_<kind>`: passes when the wrapped deterministic metric fails (value 1 - v)."""

    def __init__(self, inner: Metric, options: MetricOptions) -> None:
        self.inner = inner
        self.kind = f"not_{inner.kind}"
        self.requires = inner.requires  # type: ignore[misc]
        super().__init__(options)

    def score_one(self, sample: Result) -> Score:
        s = self.inner.score_one(sample)
        assert isinstance(s, Score)
        v = None if s.value is None else 1.0 - s.value
        return Score(v, None if v is None else v >= 1.0, s.reason, s.details)

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "kind": self.kind, "name": self.name}
