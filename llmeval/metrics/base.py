"""The metric protocol: per-case scoring, optional corpus aggregation, typed options."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from llmeval.results.records import Result, Score


class MetricOptions(BaseModel):
    """Options every metric accepts; each metric extends this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, allow_inf_nan=False)
    """Pass when the value is >= threshold (in the metric's value range, checked at load: [0, 1], higher
    is better)."""
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
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    """The values a score can take: thresholds and gate bounds outside it are suite errors."""
    cpu_bound: ClassVar[bool] = False
    """True when score_all should run `score_batch` off the event loop (CPU-bound scoring of many cases)."""
    per_case: ClassVar[bool] = False
    """True when a case's score depends on that case alone (no batch-wide statistics, no shared
    call pool), so a large run may score it chunk by chunk and let each chunk go once written."""

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
        """Score every sample with `score_batch` (in a thread if cpu_bound and there are many)."""
        if self.cpu_bound and len(samples) > 200:
            return await asyncio.to_thread(self.score_batch, samples)
        return self.score_batch(samples)

    def score_batch(self, samples: list[Result]) -> list[dict[str, Score]]:
        """Score every sample; the default calls `score_one` for each."""
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


def metric_error(e: Exception | str) -> Score:
    """The failed score recorded when a metric raised on one case (or, given a text, could not
    compute a value for the reason it says)."""
    if isinstance(e, Exception):
        text = str(e).strip()
        e = f"{type(e).__name__}: {text}" if text else f"{type(e).__name__} (no message)"
    return Score(None, None, f"metric error: {e}", error="metric")


def not_applicable(reason: str, **details: Any) -> Score:
    """A score that does not apply to this case (excluded from means, not an error, not missing)."""
    return Score(None, None, f"not applicable: {reason}", {"not_applicable": True, **details})


@dataclass(frozen=True)
class Check:
    """The outcome of a yes/no check, with a reason for either answer, so that the check and its
    `not_` form both say why they failed. `ok=None`: the check does not apply (`why_no` says why)."""

    ok: bool | None
    why_yes: str
    why_no: str
    details: dict[str, Any] = field(default_factory=dict)

    def score(self, negate: bool = False) -> Score:
        """The Score of the check (or of its negation); a passing score carries no reason."""
        if self.ok is None:  # not applicable to this case: excluded from means, not an error
            return not_applicable(self.why_no, **self.details)
        ok = self.ok != negate
        return Score(1.0 if ok else 0.0, ok, None if ok else (self.why_no if not negate else self.why_yes),
                     dict(self.details))


class CheckMetric(Metric):
    """A deterministic yes/no metric: implement `check`; `not_<kind>` comes for free."""

    per_case = True

    def check(self, sample: Result) -> Check:
        """Whether `sample` passes, with the reason for either answer."""
        raise TypeError(f"{type(self).__name__} must implement check")

    def score_one(self, sample: Result) -> Score:
        return self.check(sample).score()


class NegatedMetric(Metric):
    """`not_<kind>`: passes when the wrapped check fails; fails with the reason the check passed."""

    per_case = True

    def __init__(self, inner: CheckMetric, options: MetricOptions) -> None:
        self.inner = inner
        self.kind = f"not_{inner.kind}"
        self.requires = inner.requires  # type: ignore[misc]
        super().__init__(options)

    def score_one(self, sample: Result) -> Score:
        return self.inner.check(sample).score(negate=True)

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "kind": self.kind, "name": self.name}
