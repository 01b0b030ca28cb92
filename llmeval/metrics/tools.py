"""Tool-call checks: did the target call a tool (with these arguments, or arguments valid against
a JSON Schema), and how closely do its arguments match the expected ones."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from llmeval.metrics.base import Check, CheckMetric, Metric, MetricOptions, not_applicable
from llmeval.results.messages import call_text
from llmeval.results.records import Result, Score, ToolCall


def _calls_text(calls: list[ToolCall]) -> str:
    return ", ".join(call_text(c) for c in calls) if calls else "no tool call"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _CalledOptions(MetricOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tool: str | None = None
    """The name of the tool that must be called (any tool when absent)."""
    arguments: dict[str, Any] | None = None
    """Arguments the call must have, with these values (other arguments may be there too)."""
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    """A JSON Schema the call's arguments must satisfy."""

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: Any) -> Any:
        import jsonschema

        if v is not None:
            try:
                jsonschema.validators.validator_for(v).check_schema(v)
            except jsonschema.SchemaError as e:
                raise ValueError(f"invalid JSON Schema: {e.message}") from None
        return v


class ToolCalled(CheckMetric):
    """The target called a tool (this one, with these arguments or valid against a schema)."""

    description = "the target called a tool; options: tool, arguments (must match), schema (of the arguments)"
    Options = _CalledOptions
    shorthand: ClassVar[str] = "tool"

    def config(self) -> dict[str, Any]:
        o: Any = self.options
        cfg = {"kind": self.kind, "name": self.name, "tool": o.tool, "arguments": o.arguments, "schema": o.schema_,
               "threshold": self.threshold}
        return {k: v for k, v in cfg.items() if v is not None}

    def check(self, sample: Result) -> Check:
        o: Any = self.options
        calls = [c for c in sample.tool_calls if o.tool is None or c.name == o.tool]
        what = f"'{o.tool}'" if o.tool else "a tool"
        if not calls:
            return Check(False, "", f"{what} was not called (calls: {_calls_text(sample.tool_calls)})")
        checked = [(c, self._problem(c)) for c in calls]
        ok = next((c for c, problem in checked if problem is None), None)
        if ok is None:
            return Check(False, "", f"{what} was called, but not as required: "
                         f"{'; '.join(p for _, p in checked if p)}", {"calls": [c.to_dict() for c in calls]})
        return Check(True, f"called {call_text(ok)}", "", {"call": ok.to_dict()})

    def _problem(self, call: ToolCall) -> str | None:
        o: Any = self.options
        args = call.arguments
        if (o.arguments or o.schema_) and not isinstance(args, dict):
            return f"{call.name}: the arguments are not a JSON object: {str(args)[:200]!r}"
        for key, want in (o.arguments or {}).items():
            if key not in args:
                return f"{call.name}: no argument '{key}'"
            if args[key] != want:
                return f"{call.name}: {key} = {_json(args[key])}, expected {_json(want)}"
        if o.schema_ is not None:
            import jsonschema

            errors = sorted(jsonschema.validators.validator_for(o.schema_)(o.schema_).iter_errors(args), key=str)
            if errors:
                e = errors[0]
                return f"{call.name}: {'/'.join(map(str, e.absolute_path)) or '<arguments>'}: {e.message}"
        return None


class _ArgsOptions(MetricOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tool: str | None = None
    """The name of the tool whose call is compared (with `arguments`)."""
    arguments: dict[str, Any] | None = None
    """The expected arguments; when absent, the tool calls of the case's reference assistant turn."""
    exact: bool = False
    """Arguments the expectation does not name count against the call too."""

    @model_validator(mode="after")
    def _tool_with_arguments(self) -> _ArgsOptions:
        if self.arguments is not None and self.tool is None:
            raise ValueError("give the `tool:` whose call `arguments:` describes")
        if self.tool is not None and self.arguments is None:
            raise ValueError("give the expected `arguments:` of the tool (or neither, to compare with the "
                             "reference turn's tool calls)")
        return self


class ToolArgsMatch(Metric):
    """The share of expected tool-call arguments the target's call got right (1.0 = all of them)."""

    description = ("share of the expected tool-call arguments matched; options: tool, arguments "
                   "(default: the reference turn's tool calls), exact")
    Options = _ArgsOptions
    default_threshold = 1.0
    per_case = True

    def __init__(self, options: MetricOptions) -> None:
        super().__init__(options)
        if getattr(options, "arguments", None) is None:
            self.requires = frozenset({"expected_tool_calls"})  # type: ignore[misc]

    def config(self) -> dict[str, Any]:
        o: Any = self.options
        cfg = {"kind": self.kind, "name": self.name, "tool": o.tool, "arguments": o.arguments, "exact": o.exact,
               "threshold": self.threshold}
        return {k: v for k, v in cfg.items() if v is not None}

    def score_one(self, sample: Result) -> Score:
        o: Any = self.options
        expected = ([ToolCall(o.tool, o.arguments)] if o.arguments is not None
                    else list(sample.expected_tool_calls or []))
        if not expected:
            return not_applicable("the case has no reference tool calls")
        shares, notes = [], []
        for want in expected:
            share, note = self._best(want, sample.tool_calls)
            shares.append(share)
            if note:
                notes.append(note)
        value = sum(shares) / len(shares)
        reason = "; ".join(notes) if notes else f"arguments match: {_calls_text(sample.tool_calls)}"
        return Score(round(value, 6), None, reason, {"expected": [c.to_dict() for c in expected],
                                                      "calls": [c.to_dict() for c in sample.tool_calls]})

    def _best(self, want: ToolCall, calls: list[ToolCall]) -> tuple[float, str | None]:
        candidates = [c for c in calls if c.name == want.name]
        if not candidates:
            return 0.0, f"'{want.name}' was not called (calls: {_calls_text(calls)})"
        scored = [self._match(want, c) for c in candidates]
        return max(scored, key=lambda x: x[0])

    def _match(self, want: ToolCall, call: ToolCall) -> tuple[float, str | None]:
        o: Any = self.options
        expected = want.arguments if isinstance(want.arguments, dict) else {}
        got = call.arguments
        if not isinstance(got, dict):
            return 0.0, f"{call.name}: the arguments are not a JSON object: {str(got)[:200]!r}"
        keys = set(expected) | (set(got) if o.exact else set())
        if not keys:
            return 1.0, None
        wrong = []
        for k in sorted(keys):
            if k not in got:
                wrong.append(f"{k} missing (expected {_json(expected[k])})")
            elif k not in expected:
                wrong.append(f"{k} = {_json(got[k])} not expected")
            elif got[k] != expected[k]:
                wrong.append(f"{k} = {_json(got[k])}, expected {_json(expected[k])}")
        share = (len(keys) - len(wrong)) / len(keys)
        return share, (f"{call.name}: " + "; ".join(wrong)) if wrong else None
