"""Deterministic checks: exact match, contains, regex, JSON schema, latency, cost."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator

from llmeval.metrics.base import Check, CheckMetric, MetricOptions
from llmeval.metrics.text import references
from llmeval.results.records import Result


class _NormOptions(MetricOptions):
    strip: bool = True
    """Ignore leading and trailing whitespace."""
    ignore_case: bool = False
    """Compare case-insensitively."""


class ExactMatch(CheckMetric):
    """The output equals the expected answer (any of them, when there are several)."""

    description = "output equals expected (any reference); options: strip, ignore_case"
    requires = frozenset({"expected"})
    Options = _NormOptions

    def _norm(self, text: str) -> str:
        o: Any = self.options
        text = text.strip() if o.strip else text
        return text.lower() if o.ignore_case else text

    def check(self, sample: Result) -> Check:
        out = self._norm(sample.output or "")
        refs = [self._norm(r) for r in references(sample)]
        return Check(out in refs, "output equals expected", "output differs from expected")


class _ValueOptions(MetricOptions):
    value: str | list[str]
    """The text to look for (or a list of them, not empty)."""

    @field_validator("value")
    @classmethod
    def _not_empty(cls, v: str | list[str]) -> str | list[str]:
        if not v or (isinstance(v, list) and not all(v)):
            raise ValueError("give the text to look for: an empty value would match every output")
        return v


class Contains(CheckMetric):
    """The output contains `value` (case-sensitive)."""

    description = "output contains a string; options: value"
    Options = _ValueOptions
    shorthand: ClassVar[str] = "value"
    fold = False
    mode = "all"

    def check(self, sample: Result) -> Check:
        values = self.options.value  # type: ignore[attr-defined]
        values = [values] if isinstance(values, str) else list(values)
        out = sample.output or ""
        if self.fold:  # matched folded, reported as written
            out = out.casefold()
        hits = [(v.casefold() if self.fold else v) in out for v in values]
        ok = any(hits) if self.mode == "any" else all(hits)
        found = [v for v, h in zip(values, hits, strict=True) if h]
        missing = [v for v, h in zip(values, hits, strict=True) if not h]
        return Check(ok, f"contains: {_quoted(found)}", f"missing: {_quoted(missing)}", {"missing": missing})


class IContains(Contains):
    """The output contains `value`, ignoring case."""

    description = "output contains a string, ignoring case; options: value"
    fold = True


class ContainsAny(Contains):
    """The output contains at least one of the values."""

    description = "output contains any of a list of strings; options: value"
    mode = "any"


class ContainsAll(Contains):
    """The output contains every one of the values."""

    description = "output contains all of a list of strings; options: value"


class _RegexOptions(MetricOptions):
    pattern: str
    """A Python regular expression searched for anywhere in the output."""
    flags: list[str] = []
    """Any of IGNORECASE, MULTILINE, DOTALL."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"invalid regular expression: {e}") from None
        return v

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f.upper() not in {"IGNORECASE", "MULTILINE", "DOTALL"}]
        if bad:
            raise ValueError(f"unknown regex flag(s) {bad}; use IGNORECASE, MULTILINE or DOTALL")
        return v


class Regex(CheckMetric):
    """The output matches a regular expression."""

    description = "output matches a regular expression; options: pattern, flags"
    Options = _RegexOptions
    shorthand: ClassVar[str] = "pattern"

    def __init__(self, options: MetricOptions) -> None:
        super().__init__(options)
        o: Any = options
        flags = 0
        for f in o.flags:
            flags |= getattr(re, f.upper())
        self._re = re.compile(o.pattern, flags)

    def check(self, sample: Result) -> Check:
        m = self._re.search(sample.output or "")
        found = f"matches /{self._re.pattern}/: {m.group(0)!r}" if m else ""
        return Check(m is not None, found, f"no match for /{self._re.pattern}/", {"match": m.group(0) if m else None})


def _parse_json(text: str) -> Any:
    """Parse the output as JSON, accepting a ```json fenced block around it."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return json.loads(t)


class IsJson(CheckMetric):
    """The output parses as JSON."""

    description = "output is valid JSON (a ```json fence is allowed)"

    def check(self, sample: Result) -> Check:
        try:
            doc = _parse_json(sample.output or "")
        except ValueError as e:
            return Check(False, "", f"not JSON: {e}")
        return Check(True, f"output is JSON ({_json_type(doc)})", "")


class _SchemaOptions(MetricOptions):
    schema_: dict[str, Any] | bool = Field(True, alias="schema")
    """A JSON Schema the output (parsed as JSON) must satisfy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: Any) -> Any:
        import jsonschema

        try:
            jsonschema.validators.validator_for(v).check_schema(v)
        except jsonschema.SchemaError as e:
            raise ValueError(f"invalid JSON Schema: {e.message}") from None
        return v


class JsonSchema(CheckMetric):
    """The output is JSON that satisfies a JSON Schema."""

    description = "output is JSON valid against a JSON Schema; options: schema"
    Options = _SchemaOptions
    shorthand: ClassVar[str] = "schema"

    def config(self) -> dict[str, Any]:
        o: Any = self.options
        return {"kind": self.kind, "name": self.name, "schema": o.schema_, "threshold": self.threshold}

    def check(self, sample: Result) -> Check:
        import jsonschema

        try:
            doc = _parse_json(sample.output or "")
        except ValueError as e:
            return Check(False, "", f"not JSON: {e}")
        o: Any = self.options
        errors = sorted(jsonschema.validators.validator_for(o.schema_)(o.schema_).iter_errors(doc), key=str)
        msgs = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:5]]
        return Check(not errors, "output is JSON valid against the schema", "; ".join(msgs), {"errors": msgs})


class _MaxMsOptions(MetricOptions):
    max_ms: float = Field(ge=0, allow_inf_nan=False)
    """The largest acceptable latency in milliseconds."""


class Latency(CheckMetric):
    """The call took at most `max_ms` milliseconds (cached responses use their recorded latency)."""

    description = "latency <= max_ms; options: max_ms"
    Options = _MaxMsOptions
    shorthand: ClassVar[str] = "max_ms"

    def check(self, sample: Result) -> Check:
        limit: float = self.options.max_ms  # type: ignore[attr-defined]
        ms = sample.latency_ms
        if ms is None:
            return Check(None, "", "no latency recorded")
        return Check(ms <= limit, f"{ms:.0f} ms <= {limit:.0f} ms", f"{ms:.0f} ms > {limit:.0f} ms", {"latency_ms": ms})


class _MaxUsdOptions(MetricOptions):
    max_usd: float = Field(ge=0, allow_inf_nan=False)
    """The largest acceptable cost of one call in US dollars."""


class Cost(CheckMetric):
    """The call cost at most `max_usd` (needs a model with a known price)."""

    description = "cost per case <= max_usd; options: max_usd"
    Options = _MaxUsdOptions
    shorthand: ClassVar[str] = "max_usd"

    def check(self, sample: Result) -> Check:
        limit: float = self.options.max_usd  # type: ignore[attr-defined]
        cost = sample.cost_usd
        if cost is None:
            return Check(None, "", "no cost known for this target")
        return Check(cost <= limit, f"${cost:.6f} <= ${limit}", f"${cost:.6f} > ${limit}", {"cost_usd": cost})


def _quoted(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _json_type(doc: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(doc), "a number")
