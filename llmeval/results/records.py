"""Values that cross module borders: cases, target responses, scores and results."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Container
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Case:
    """One test case: what goes into a target and what comes out of the suite file."""

    id: str
    input: Any
    expected: str | list[str] | None = None
    contexts: list[str] | None = None
    tags: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    """A conversation sent instead of `input` (see llmeval.results.messages for its form)."""
    expected_tool_calls: list[ToolCall] | None = None
    """The tool calls of the reference assistant turn of a conversation, when it has any."""

    def template_vars(self) -> dict[str, Any]:
        """The variables a Jinja prompt or request body sees for this case."""
        return {
            "id": self.id,
            "input": self.input,
            "expected": self.expected,
            "contexts": self.contexts or [],
            "tags": list(self.tags),
            "vars": self.vars,
            # The conversation (a single input as one user message), e.g. for an HTTP chat endpoint.
            "messages": self.messages if self.messages is not None else [{"role": "user", "content": self.input}],
            **{k: v for k, v in self.vars.items() if k not in _RESERVED},
        }


_RESERVED = {"id", "input", "expected", "contexts", "tags", "vars", "messages"}


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One call to make: a case against a target at an epoch."""

    case: Case
    target: str
    epoch: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case.id, self.target, self.epoch)


def case_id_for(value: Any) -> str:
    """A stable id derived from a case's input (used when the suite gives none)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return "c-" + hashlib.sha1(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call a model (or an HTTP/python target) asked for: its name and arguments
    (a parsed JSON object when the arguments are valid JSON, else the text as returned)."""

    name: str
    arguments: Any = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCall:
        return cls(str(d["name"]), d.get("arguments", {}), d.get("id"))


def tool_calls_to_list(calls: list[ToolCall] | None) -> list[dict[str, Any]]:
    return [c.to_dict() for c in calls or []]


def tool_calls_from_list(items: Any) -> list[ToolCall]:
    return [ToolCall.from_dict(d) for d in items or []]


@dataclass(slots=True)
class Usage:
    """Token counts for one call (or summed over many)."""

    prompt: int = 0
    completion: int = 0

    def add(self, other: Usage) -> None:
        self.prompt += other.prompt
        self.completion += other.completion

    def to_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion}


@dataclass
class CallStats:
    """Call counters of one target or of the judge, as run.json records them (`calls`, `judge_usage`)."""

    calls: int = 0
    cached: int = 0
    retries: int = 0
    errors: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached": self.cached,
            "retries": self.retries,
            "errors": self.errors,
            "tokens": self.usage.to_dict(),
            "cost_usd": round(self.cost_usd, 8),
        }


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a call failed after retries: a short type name and a message (and, for an exception in
    the user's own code, its traceback in `details`)."""

    type: str
    message: str
    details: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"type": self.type, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(slots=True)
class TokenLogprob:
    """One generated token with its logprob and the top alternatives at that position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    """What a chat model returned: text, usage, cost and (when asked) per-token logprobs."""

    text: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "text": self.text,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "logprobs": [asdict(t) for t in self.logprobs] if self.logprobs is not None else None,
            "finish_reason": self.finish_reason,
        }
        if self.tool_calls:  # only when there are some: judge cache entries stay as they were
            d["tool_calls"] = tool_calls_to_list(self.tool_calls)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        lps = d.get("logprobs")
        return cls(
            text=d["text"],
            usage=Usage(**d.get("usage", {})),
            cost_usd=d.get("cost_usd"),
            logprobs=[TokenLogprob(**t) for t in lps] if lps is not None else None,
            finish_reason=d.get("finish_reason"),
            tool_calls=tool_calls_from_list(d.get("tool_calls")),
        )


@dataclass
class TargetResponse:
    """What a target produced for one case (before scoring)."""

    output: str | None
    contexts: list[str] | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    raw: Any = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "output": self.output,
            "contexts": self.contexts,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
        }
        if self.tool_calls:
            d["tool_calls"] = tool_calls_to_list(self.tool_calls)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetResponse:
        return cls(
            output=d.get("output"),
            contexts=d.get("contexts"),
            usage=Usage(**d.get("usage", {})),
            cost_usd=d.get("cost_usd"),
            tool_calls=tool_calls_from_list(d.get("tool_calls")),
        )


_LEGACY_PREFIXES = (("metric error", "metric"), ("judge error", "judge"), ("unparseable judge answer", "unparseable"),
                    ("prompt template error", "template"))


@dataclass(slots=True)
class Score:
    """One metric on one result. `value` is in [0, 1] (higher is better) or None with a reason.

    A None value is one of three things: a metric error (`error` says which kind, `reason` what
    happened), not applicable (`details.not_applicable`), or no output because the target call
    failed. Only the first is a failed score."""

    value: float | None
    passed: bool | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the value could not be computed, None when it was: "metric" (the metric raised or returned
    no usable value), "judge" (a judge call failed after retries, timeouts included), "unparseable"
    (the judge's answer, even after the repair re-ask), "template" (a prompt failed on the case)."""

    @property
    def not_applicable(self) -> bool:
        return self.value is None and self.error is None and bool(self.details.get("not_applicable"))

    def light(self) -> Score:
        """This score without what only its stored line needs (details, the reason of a value):
        what a summary, a gate and `passed` read, for a large run to keep once the line is written."""
        details = {"not_applicable": True} if self.details.get("not_applicable") else {}
        return Score(self.value, self.passed, self.reason if self.value is None else None, details, self.error)

    def to_dict(self) -> dict[str, Any]:
        d = {"value": self.value, "passed": self.passed, "reason": self.reason, "details": self.details}
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], details: Container[str] | None = None) -> Score:
        """The score of a results.jsonl line; with `details`, only those detail keys are kept."""
        error = d.get("error")
        if "error" not in d and d.get("value") is None:
            # Runs written before the marker existed: their error reasons had fixed prefixes.
            reason = str(d.get("reason") or "")
            error = next((kind for prefix, kind in _LEGACY_PREFIXES if reason.startswith(prefix)), None)
        return cls(d.get("value"), d.get("passed"), d.get("reason"), _shared_keys(d.get("details") or {}, details),
                   error)


def _shared_keys(d: dict[str, Any], keep: Container[str] | None) -> dict[str, Any]:
    """`d` (only the `keep` keys, when given) with its keys and short text values interned: every
    line of a large run repeats the same detail names, and a JSON parser makes new strings for each."""
    return {sys.intern(k): sys.intern(v) if isinstance(v, str) and len(v) <= 40 else v
            for k, v in d.items() if keep is None or k in keep}


@dataclass(slots=True)
class Result:
    """One line of results.jsonl: a (case, target, epoch) with its output and scores."""

    case_id: str
    target: str
    epoch: int
    input: Any
    expected: str | list[str] | None
    contexts: list[str] | None
    output: str | None
    latency_ms: float | None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cached: bool = False
    error: ErrorInfo | None = None
    scores: dict[str, Score] = field(default_factory=dict)
    passed: bool | None = None
    tags: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] | None = None
    """The case's conversation (images as path and sha256, never their bytes); None for a single input."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    expected_tool_calls: list[ToolCall] | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case_id, self.target, self.epoch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "target": self.target,
            "epoch": self.epoch,
            "input": self.input,
            "expected": self.expected,
            "contexts": self.contexts,
            "output": self.output,
            "latency_ms": self.latency_ms,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "cached": self.cached,
            "error": self.error.to_dict() if self.error else None,
            "scores": {k: s.to_dict() for k, s in self.scores.items()},
            "passed": self.passed,
            "tags": self.tags,
            "messages": self.messages,
            "tool_calls": tool_calls_to_list(self.tool_calls),
            "expected_tool_calls": (None if self.expected_tool_calls is None
                                    else tool_calls_to_list(self.expected_tool_calls)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], details: Container[str] | None = None) -> Result:
        """The result of a results.jsonl line; with `details`, its scores keep only those detail keys."""
        err = d.get("error")
        return cls(
            case_id=d["case_id"],
            target=d["target"],
            epoch=d.get("epoch", 0),
            input=d.get("input"),
            expected=d.get("expected"),
            contexts=d.get("contexts"),
            output=d.get("output"),
            latency_ms=d.get("latency_ms"),
            usage=Usage(**(d.get("usage") or {})),
            cost_usd=d.get("cost_usd"),
            cached=bool(d.get("cached")),
            error=ErrorInfo(**err) if err else None,
            scores={sys.intern(k): Score.from_dict(v, details) for k, v in (d.get("scores") or {}).items()},
            passed=d.get("passed"),
            tags=list(d.get("tags") or []),
            messages=d.get("messages"),
            tool_calls=tool_calls_from_list(d.get("tool_calls")),
            expected_tool_calls=(None if d.get("expected_tool_calls") is None
                                 else tool_calls_from_list(d["expected_tool_calls"])),
        )
