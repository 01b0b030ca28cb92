"""Shared plumbing of the LLM-as-judge metrics: prompts, JSON answers with one repair re-ask,
the per-metric judge override, and per-case error handling (a judge failure is never a score)."""

from __future__ import annotations

import asyncio
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from llmeval.config.files import read_text
from llmeval.config.paths import metrics_dirs
from llmeval.config.spec import JudgeSpec
from llmeval.errors import ConfigError, LlmevalError, TargetCallError
from llmeval.metrics.base import Metric, MetricOptions, ScoringContext, metric_error
from llmeval.results.records import Completion, Result, Score

T = TypeVar("T")

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
"""Default judge prompts (package data); a same-named file in the project's metrics/ wins."""

REPAIR = (
    "Your previous answer could not be used: {error}\n"
    "Answer again, following the required format exactly and adding nothing else."
)


class JudgeClient(Protocol):
    """What a judge metric needs from the run's judge (llmeval.execute.judge.Judge is one): a
    completion with retries and caching, and the judge a metric's own `judge:` options name."""

    spec: JudgeSpec | None

    def with_overrides(self, spec: JudgeSpec | None) -> JudgeClient: ...

    async def complete(self, messages: list[dict[str, Any]], *, params: dict[str, Any] | None = None,
                       logprobs: bool = False, top_logprobs: int = 0, score_tokens: list[str] | None = None,
                       sample: int = 0) -> Completion: ...


class ParseProblem(ValueError):
    """A judge answer that does not have the requested shape (the message says how)."""


class JudgeParseError(Exception):
    """The judge's answer could not be parsed, even after one repair re-ask."""

    def __init__(self, error: str, attempts: list[str]) -> None:
        super().__init__(error)
        self.error, self.attempts = error, attempts


class JudgeOptions(MetricOptions):
    """Options shared by every judge metric."""

    judge: JudgeSpec | None = None
    """This metric's own judge ({model, params, api_base, ...}) instead of the suite's `judge:`."""


def prompt_file(name: str, metrics_dir: Path | None) -> Path:
    """The prompt template `name`: the project's metrics/<name> when present, else the default."""
    if metrics_dir is not None and (metrics_dir / name).is_file():
        return metrics_dir / name
    return PROMPTS_DIR / name


def check_prompt_overrides(names: list[str], metrics_dir: Path | None) -> None:
    """Fail at load time (with the file's path) when an overriding prompt does not compile."""
    from llmeval.config.templates import check_template

    for name in names:
        path = prompt_file(name, metrics_dir)
        if path.parent == PROMPTS_DIR:
            continue
        problem = check_template(read_text(path, "prompt file"))
        if problem:
            raise ConfigError(problem, str(path), 1, 1, hint=f"this file overrides the default prompt {name}")


def render_prompt(name: str, variables: dict[str, Any], metrics_dir: Path | None) -> str:
    """Render the prompt template `name` over `variables` (sandboxed Jinja)."""
    from llmeval.config.templates import render

    return render(read_text(prompt_file(name, metrics_dir), "prompt file"), variables).strip()


def as_text(value: Any) -> str:
    """A case field as prompt text (non-string inputs such as chat messages become JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_json(text: str) -> Any:
    """The first JSON object or array in a judge answer (``` fences and chatter around it ignored)."""
    body = re.sub(r"```(?:json|JSON)?", "", text)
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", body):
        try:
            value, _ = decoder.raw_decode(body, m.start())
        except json.JSONDecodeError:
            continue
        return value
    raise ParseProblem("no JSON object found; answer with a single JSON object")


def json_list(text: str, key: str) -> list[Any]:
    """The list under `key` in the answer's JSON object (a bare JSON list is accepted too)."""
    value = parse_json(text)
    if isinstance(value, dict):
        if key not in value:
            raise ParseProblem(f'the JSON object has no "{key}" key')
        value = value[key]
    if not isinstance(value, list):
        raise ParseProblem(f'"{key}" must be a JSON list')
    return value


def verdicts(text: str, n: int, field: str, per: str) -> list[tuple[Any, str]]:
    """(item[field], reason) for each entry of {"verdicts": [...]}: exactly `n`, one per `per`, in order.
    A bare value instead of an object is taken as the field's value with no reason."""
    items = json_list(text, "verdicts")
    if len(items) != n:
        raise ParseProblem(f"expected {n} verdicts, one per {per} in order, got {len(items)}")
    return [(it.get(field), str(it.get("reason") or "")) if isinstance(it, dict) else (it, "") for it in items]


async def ask_parsed(
    judge: Any,
    prompt: str,
    parse: Callable[[Completion], T],
    *,
    params: dict[str, Any] | None = None,
    logprobs: bool = False,
    top_logprobs: int = 0,
    score_tokens: list[str] | None = None,
    sample: int = 0,
) -> tuple[T, Completion]:
    """Ask the judge and parse its answer; re-ask once with the parse error, then give up.

    Raises JudgeParseError (with both raw answers) or TargetCallError."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    kw = dict(params=params, logprobs=logprobs, top_logprobs=top_logprobs, score_tokens=score_tokens, sample=sample)
    first = await judge.complete(messages, **kw)
    try:
        return parse(first), first
    except ParseProblem as e:
        error = str(e)
    messages += [{"role": "assistant", "content": first.text}, {"role": "user", "content": REPAIR.format(error=error)}]
    second = await judge.complete(messages, **kw)
    try:
        return parse(second), second
    except ParseProblem as e:
        raise JudgeParseError(str(e), [first.text, second.text]) from None


def failure_score(e: Exception, step: str = "") -> Score:
    """The failed score recorded for a judge call that failed after retries (timeouts included)
    or an answer that could not be parsed even after the repair re-ask."""
    where = f" ({step})" if step else ""
    if isinstance(e, JudgeParseError):
        return Score(None, None, f"unparseable judge answer{where}: {e.error}",
                     {"error": e.error, "raw": e.attempts[-1], "attempts": e.attempts}, error="unparseable")
    if isinstance(e, TargetCallError):
        return Score(None, None, f"judge error{where}: {e.kind}: {e.message}",
                     {"error": {"type": e.kind, "message": e.message, "status": e.status}}, error="judge")
    raise e


class JudgeMetric(Metric, ABC):
    """Base of metrics that call a judge: resolves the judge, scores cases concurrently, and turns
    judge failures into failed scores (metric errors) with the reason and raw answer."""

    Options = JudgeOptions
    requires = frozenset({"judge"})
    wants_base_dir = True
    prompt_names: tuple[str, ...] = ()
    """Prompt templates this metric renders (each may be overridden in the project's metrics/)."""

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options)
        dirs = metrics_dirs(base_dir)
        self.metrics_dir = dirs[0] if dirs else None
        check_prompt_overrides(list(self.prompt_names), self.metrics_dir)

    def config(self) -> dict[str, Any]:
        from llmeval.config.secrets import redact

        return redact(super().config(), resolved=True)  # options hold resolved ${VAR}s: never stored

    def judge_calls(self) -> tuple[list[str], list[str]]:
        """The prompt templates of the judge calls made once per run and per scored result, for
        --dry-run's estimate (a re-ask after an unparseable answer is not counted). Default: each of
        `prompt_names` once per result."""
        return [], [self.template(name) for name in self.prompt_names]

    def template(self, name: str) -> str:
        """The text of prompt template `name` (the project's override when there is one)."""
        return prompt_file(name, self.metrics_dir).read_text(encoding="utf-8")

    def prompts_dir(self, ctx: ScoringContext) -> Path | None:
        """The project's metrics/ folder for prompt overrides (the run's, else the one found at load)."""
        return ctx.metrics_dir if ctx.metrics_dir is not None else self.metrics_dir

    def note(self, ctx: ScoringContext, **facts: Any) -> None:
        """Record run-level facts about this metric in run.json's `metric_notes`."""
        ctx.notes.setdefault(self.name, {}).update(facts)

    def resolve_judge(self, ctx: ScoringContext) -> Any:
        """The suite's judge, or this metric's own when its options name one (built by the run's
        judge pool: the suite's call defaults, the run's cache, counted in judge_usage)."""
        spec: JudgeSpec | None = getattr(self.options, "judge", None)
        judge = ctx.judge
        if judge is None:
            return None
        if spec is not None:
            return judge.with_overrides(spec)
        return judge if getattr(judge, "spec", True) is not None else None

    async def score_all(self, samples: list[Result], ctx: ScoringContext) -> list[dict[str, Score]]:
        judge = self.resolve_judge(ctx)
        if judge is None:
            failed = metric_error("no judge configured (the suite has no `judge:` and the metric names none)")
            return [{k: failed for k in self.keys()} for _ in samples]
        try:
            await self.prepare(judge, ctx)
        except (JudgeParseError, TargetCallError) as e:
            failed = failure_score(e, "preparing the metric")
            return [{k: failed for k in self.keys()} for _ in samples]
        scored = await asyncio.gather(*(self._guarded(s, judge, ctx) for s in samples))
        scored = await self.finish(samples, scored, ctx)
        return [self._apply_threshold(x if isinstance(x, dict) else {self.name: x}) for x in scored]

    async def _guarded(self, sample: Result, judge: Any, ctx: ScoringContext) -> Score | dict[str, Score]:
        if sample.output is None:
            return Score(None, None, "no output (target error)")
        try:
            return await self.score_case(sample, judge, ctx)
        except (JudgeParseError, TargetCallError) as e:
            return failure_score(e)
        except ConfigError as e:  # a prompt template that fails on this case's values only
            return Score(None, None, f"prompt template error: {e.message}", {"error": e.message}, error="template")
        except LlmevalError:
            raise  # a user error (a missing dependency): exit 2 with its message
        except Exception as e:  # a bug on one case must not cost the other cases their scores
            return metric_error(e)

    async def prepare(self, judge: Any, ctx: ScoringContext) -> None:
        """Run-level judge work before the cases (e.g. G-Eval's evaluation steps)."""

    @abstractmethod
    async def score_case(self, sample: Result, judge: Any, ctx: ScoringContext) -> Score | dict[str, Score]:
        """Score one case with the judge; may raise JudgeParseError or TargetCallError."""

    async def finish(self, samples: list[Result], scored: list[Any], ctx: ScoringContext) -> list[Any]:
        """Batch work after every judge call (e.g. embeddings); the default keeps the scores."""
        return scored

