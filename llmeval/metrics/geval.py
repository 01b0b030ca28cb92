"""G-Eval (Liu et al. 2023): evaluation steps from the criteria (auto chain-of-thought), a
form-filling prompt, and a score weighted by the judge's probabilities of the score tokens."""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmeval.metrics.base import MetricOptions, ScoringContext
from llmeval.metrics.judging import (
    JudgeMetric,
    JudgeOptions,
    JudgeParseError,
    ParseProblem,
    as_text,
    ask_parsed,
    json_list,
    render_prompt,
)
from llmeval.results.messages import transcript
from llmeval.results.records import Completion, Result, Score

Field_ = Literal["input", "output", "expected", "contexts", "tool_calls", "messages"]
FORM_VARIABLES = frozenset({"name", "task", "criteria", "steps", "scale_min", "scale_max", "fields",
                            "input", "output", "expected", "contexts", "tool_calls", "messages"})
"""What a custom `prompt` template may use."""
DEFAULT_TASK = "an output that an AI system produced in response to an input"
TOP_LOGPROBS = 20  # the most OpenAI-compatible APIs return
SAMPLING_TEMPERATURE = 1.0
FIRST_POSITION = "score-token distribution at the first position"
"""`details.method` when the judge gives the exact logprob of every score token (local models)."""


class FormSettings(BaseModel):
    """What defines a G-Eval metric (shared by `geval:` in a suite and rubric files in metrics/)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    criteria: str
    """What is rated, in a sentence or two (the paper's 'Evaluation Criteria')."""
    steps: list[str] | None = None
    """Evaluation steps; generated once from the criteria by the judge when absent."""
    scale: tuple[int, int] = (1, 5)
    """Lowest and highest score; the value is normalised to [0, 1]."""
    fields: list[Field_] = ["input", "output"]
    """Which parts of the case the judge sees (also `tool_calls`: the calls the target made, and
    `messages`: a conversation case's messages before the answer)."""
    samples: int = Field(10, ge=1, le=100)
    """Answers to average (temperature 1) when the judge returns no logprobs."""
    logprobs: bool = True
    """Ask for top logprobs; false forces the sampling method (for APIs that reject logprobs)."""
    task: str | None = None
    """The task introduction: 'You will be given <task>.'"""
    prompt: str | None = None
    """A Jinja form template over name, task, criteria, steps, scale_min, scale_max, fields,
    input, output, expected, contexts, tool_calls (a list of {name, arguments}) and messages (the
    conversation as `role: text` lines); the judge must still answer with the score first."""

    @model_validator(mode="after")
    def _check(self) -> FormSettings:
        lo, hi = self.scale
        if not lo < hi:
            raise ValueError(f"scale must be [min, max] with min < max, got [{lo}, {hi}]")
        if hi - lo > 20:
            raise ValueError("scale spans more than 21 scores; use e.g. [1, 5] or [1, 10]")
        if not self.fields:
            raise ValueError("fields must name at least one of input, output, expected, contexts")
        if self.steps is not None and not [s for s in self.steps if s.strip()]:
            raise ValueError("steps is empty; remove it to have the judge generate them")
        if self.prompt is not None:
            unknown = template_variables(self.prompt) - FORM_VARIABLES
            if unknown:
                raise ValueError(f"prompt uses unknown variable(s) {', '.join(sorted(unknown))}; "
                                 f"available: {', '.join(sorted(FORM_VARIABLES))}")
        return self


def template_variables(source: str) -> set[str]:
    """The undeclared variables of a prompt template, parsed in the suite templates' bounded sandbox
    (ValueError on a syntax error or a template nested too deeply to compile)."""
    from llmeval.config.templates import template_variables as variables

    try:
        return variables(source)
    except ValueError as e:
        raise ValueError(f"prompt {e}") from None


class GEvalOptions(JudgeOptions, FormSettings):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass(frozen=True)
class Answer:
    """A parsed form answer: the score, where it starts in the text, and the reason after it."""

    score: int
    offset: int
    reason: str


_SCORE = re.compile(r"\A\s*(?:[-*]\s*)?(?:[^\W\d][^\n:\d]{0,60}:\s*)?[*\s]*(\d+)")


def parse_answer(text: str, lo: int, hi: int) -> Answer:
    """The score at the start of a form answer ('4', '- Coherence: 4', '**4**'), and the reason."""
    m = _SCORE.match(text)
    if m is None:
        raise ParseProblem(f"the answer must start with the score, a whole number from {lo} to {hi}")
    rest = text[m.end():]
    if re.match(r"\.\d", rest):
        raise ParseProblem(f"the score must be a whole number from {lo} to {hi}")
    score = int(m.group(1))
    if not lo <= score <= hi:
        raise ParseProblem(f"the score {score} is outside the scale {lo}-{hi}")
    reason = re.sub(r"\s+", " ", re.sub(r"\A[\s*/\d.:\-–—)]*", "", rest)).strip()
    return Answer(score, m.start(1), reason[:500])


def parse_steps(c: Completion) -> list[str]:
    """Evaluation steps from a JSON answer, or from a numbered list as a fallback."""
    try:
        items = json_list(c.text, "steps")
    except ParseProblem:
        items = re.findall(r"(?m)^\s*\d+[.)]\s+(.+?)\s*$", c.text)
        if not items:
            raise ParseProblem('expected {"steps": ["...", ...]} with at least one step') from None
    steps = [str(s).strip() for s in items if str(s).strip()]
    if not steps:
        raise ParseProblem("the list of steps is empty")
    return steps


def score_distribution(c: Completion, answer: Answer, lo: int, hi: int) -> dict[int, float] | None:
    """p(score) at the score token, from its top logprobs, renormalised over the valid scores;
    None when the answer has no logprobs or the score is not one token."""
    if not c.logprobs:
        return None
    valid = {str(s): s for s in range(lo, hi + 1)}
    at = None
    if "".join(t.token for t in c.logprobs) == c.text:
        pos = 0
        for t in c.logprobs:
            if pos <= answer.offset < pos + len(t.token):
                at = t if t.token.strip() == str(answer.score) else None
                break
            pos += len(t.token)
    else:  # tokens that do not spell the text: the first valid score token is the score position
        at = next((t for t in c.logprobs if t.token.strip() in valid), None)
    if at is None:
        return None
    top = {**at.top}
    top.setdefault(at.token, at.logprob)
    probs: dict[int, float] = {}
    for token, lp in top.items():
        s = valid.get(token.strip())
        if s is not None:  # "3" and " 3" are the same score
            probs[s] = probs.get(s, 0.0) + math.exp(lp)
    total = sum(probs.values())
    if total <= 0:
        return None
    return {s: p / total for s, p in sorted(probs.items())}


def exact_score_tokens(judge: Any) -> bool:
    """True when the judge's logprobs hold the exact logprob of every requested score token at
    every position (the in-process `local/` provider), not just an API's top alternatives."""
    return str(getattr(judge, "model", "")).startswith("local/")


def first_position_distribution(c: Completion, lo: int, hi: int) -> tuple[dict[int, float], float] | None:
    """p(score) at the first generated token, renormalised over the valid scores, and the total
    probability the judge gave them there; None unless that position holds every score token."""
    if not c.logprobs:
        return None
    top = c.logprobs[0].top
    scores = {s: top.get(str(s)) for s in range(lo, hi + 1)}
    if any(lp is None for lp in scores.values()):
        return None  # a score that is not one token: no exact distribution
    probs = {s: math.exp(lp) for s, lp in scores.items() if lp is not None}
    total = sum(probs.values())
    if total <= 0:
        return None
    return {s: p / total for s, p in probs.items()}, total


class GEval(JudgeMetric):
    """G-Eval: a probability-weighted form-filling score on the criteria, normalised to [0, 1]."""

    description = "G-Eval (Liu et al. 2023): judge score on criteria, weighted by score-token probabilities"
    Options = GEvalOptions
    prompt_names = ("geval.j2", "geval_steps.j2")

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options, base_dir)
        self.form: FormSettings = options  # type: ignore[assignment]
        self._steps: list[str] | None = None
        self.requires = frozenset({"judge"} | {f for f in self.form.fields if f in ("expected", "contexts")})

    def judge_calls(self) -> tuple[list[str], list[str]]:
        # Steps once per metric (unless given); per result one form with logprobs, else `samples`.
        once = [self.template("geval_steps.j2")] if self.form.steps is None and self._needs_steps() else []
        form = self.form.prompt if self.form.prompt is not None else self.template("geval.j2")
        return once, [form] * (1 if self.form.logprobs else self.form.samples)

    def _needs_steps(self) -> bool:
        return self.form.prompt is None or "steps" in template_variables(self.form.prompt)

    async def prepare(self, judge: Any, ctx: ScoringContext) -> None:
        """Generate the evaluation steps once per run (the judge's cache makes reruns free)."""
        if self.form.steps is not None or not self._needs_steps():
            self._steps = [s for s in (self.form.steps or []) if s.strip()]
            self.note(ctx, steps=self._steps, steps_generated=False)
            return
        lo, hi = self.form.scale
        prompt = render_prompt("geval_steps.j2", {
            "name": self.name, "task": self.form.task or DEFAULT_TASK, "criteria": self.form.criteria,
            "scale_min": lo, "scale_max": hi, "fields": self.form.fields,
        }, self.prompts_dir(ctx))
        self._steps, _ = await ask_parsed(judge, prompt, parse_steps)
        self.note(ctx, steps=self._steps, steps_generated=True)

    def form_prompt(self, sample: Result, ctx: ScoringContext) -> str:
        """The filled-in evaluation form for one case."""
        from llmeval.config.templates import render

        lo, hi = self.form.scale
        expected = sample.expected if isinstance(sample.expected, (str, type(None))) else "\n".join(
            f"- {e}" for e in sample.expected)
        variables = {
            "name": self.name, "task": self.form.task or DEFAULT_TASK, "criteria": self.form.criteria,
            "steps": self._steps or [], "scale_min": lo, "scale_max": hi, "fields": self.form.fields,
            "input": as_text(sample.input), "output": sample.output or "", "expected": expected or "",
            "contexts": list(sample.contexts or []),
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in sample.tool_calls],
            "messages": transcript(sample.messages),
        }
        if self.form.prompt is not None:
            return render(self.form.prompt, variables).strip()
        return render_prompt("geval.j2", variables, self.prompts_dir(ctx))

    async def score_case(self, sample: Result, judge: Any, ctx: ScoringContext) -> Score:
        lo, hi = self.form.scale
        prompt = self.form_prompt(sample, ctx)
        tokens = [str(s) for s in range(lo, hi + 1)]
        want = self.form.logprobs
        # The form ends with "- <name>:", so the answer's first token is the score position. A judge
        # that gives every score token's exact logprob there is read there, whatever it wrote.
        exact = want and exact_score_tokens(judge)

        def read(c: Completion) -> Answer | None:
            try:
                return parse_answer(c.text, lo, hi)
            except ParseProblem:
                if exact and first_position_distribution(c, lo, hi) is not None:
                    return None  # no re-ask: the score comes from the distribution
                raise

        answer, c = await ask_parsed(judge, prompt, read, logprobs=want,
                                     top_logprobs=TOP_LOGPROBS if want else 0, score_tokens=tokens)
        first = first_position_distribution(c, lo, hi) if exact else None
        dist = first[0] if first else (score_distribution(c, answer, lo, hi) if want and answer else None)
        if dist is not None:
            score = sum(s * p for s, p in dist.items())
            details: dict[str, Any] = {"method": FIRST_POSITION if first else "logprobs",
                                       "answer": answer.score if answer else None, "raw": c.text,
                                       "distribution": {str(s): round(p, 6) for s, p in dist.items()}}
            if first:  # how much the judge wanted to answer with a score at all
                details["score_mass"] = round(first[1], 6)
            reason = answer.reason if answer else ""
        else:
            score, details, reason = await self._sample(judge, prompt)
            if want:
                details["fallback"] = ("no logprobs in the judge's answer" if not c.logprobs
                                       else "the score is not a single token in the judge's logprobs")
        details.update(score=round(score, 6), scale=[lo, hi])
        value = (score - lo) / (hi - lo)
        text = f"{score:.2f} on {lo}-{hi}" + (f": {reason}" if reason else "")
        return Score(round(value, 6), None, text, details)

    async def _sample(self, judge: Any, prompt: str) -> tuple[float, dict[str, Any], str]:
        """The mean of `samples` answers at temperature 1 (the paper's fallback without logprobs)."""
        lo, hi = self.form.scale

        seed = (getattr(getattr(judge, "spec", None), "params", None) or {}).get("seed")
        if seed is None and exact_score_tokens(judge):
            seed = 0  # a local judge: reproducible samples

        async def one(i: int) -> tuple[Answer, Completion] | JudgeParseError:
            params: dict[str, Any] = {"temperature": SAMPLING_TEMPERATURE}
            if seed is not None:  # one seed for every sample would give one answer `samples` times
                params["seed"] = int(seed) + i + 1
            try:
                return await ask_parsed(judge, prompt, lambda c: parse_answer(c.text, lo, hi),
                                        params=params, sample=i + 1)
            except JudgeParseError as e:
                return e

        got = await asyncio.gather(*(one(i) for i in range(self.form.samples)))
        ok = [g for g in got if not isinstance(g, JudgeParseError)]
        bad = [g for g in got if isinstance(g, JudgeParseError)]
        if not ok:
            raise JudgeParseError(bad[0].error, bad[0].attempts)
        scores = [a.score for a, _ in ok]
        counts = {str(s): scores.count(s) / len(scores) for s in range(lo, hi + 1) if s in scores}
        details: dict[str, Any] = {"method": "sampling", "samples": scores, "distribution": counts,
                                   "raw": [c.text for _, c in ok]}
        if bad:  # kept visible: an unusable sample is excluded, never counted as a score
            details["unparseable_samples"] = [e.attempts[-1] for e in bad]
        reason = next((a.reason for a, _ in ok if a.reason), "")
        return sum(scores) / len(scores), details, reason
