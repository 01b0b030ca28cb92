"""Deterministic metrics: exact_match, contains, icontains, regex, json_schema, latency and not_ forms."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from llmeval.errors import ConfigError
from llmeval.metrics.base import ScoringContext
from llmeval.metrics.registry import build_metric
from llmeval.results.records import Result, Score


def result(output: str | None, expected: Any = None, latency_ms: float | None = 12.0) -> Result:
    return Result(case_id="c1", target="t", epoch=0, input="q", expected=expected, contexts=None,
                  output=output, latency_ms=latency_ms)


def score(name: str, options: Any, output: str | None, **kw: Any) -> Score:
    """Build the metric as a suite entry `{name: options}` would and score one result."""
    metric = build_metric(name, options)
    [scores] = asyncio.run(metric.score_all([result(output, **kw)], ScoringContext()))
    assert list(scores) == [metric.name]
    return scores[metric.name]


def test_exact_match_strips_whitespace_by_default() -> None:
    assert score("exact_match", None, "  Paris\n", expected="Paris") == Score(1.0, True, None, {})


def test_exact_match_is_case_sensitive_unless_asked() -> None:
    miss = score("exact_match", None, "paris", expected="Paris")
    assert (miss.value, miss.passed, miss.reason) == (0.0, False, "output differs from expected")
    assert score("exact_match", {"ignore_case": True}, "paris", expected="Paris").passed is True


def test_exact_match_without_strip_keeps_whitespace() -> None:
    assert score("exact_match", {"strip": False}, "Paris ", expected="Paris").value == 0.0


def test_exact_match_accepts_any_of_several_references() -> None:
    assert score("exact_match", None, "30 days", expected=["thirty days", "30 days"]).value == 1.0
    assert score("exact_match", None, "31 days", expected=["thirty days", "30 days"]).value == 0.0


def test_not_exact_match_inverts_value_and_verdict() -> None:
    s = score("not_exact_match", None, "Paris", expected="Paris")
    assert (s.value, s.passed) == (0.0, False)
    assert score("not_exact_match", None, "Lyon", expected="Paris").passed is True


def test_contains_is_case_sensitive_and_lists_what_is_missing() -> None:
    assert score("contains", {"value": "30 days"}, "Within 30 days.").passed is True
    s = score("contains", {"value": "30 Days"}, "Within 30 days.")
    assert (s.value, s.passed, s.reason, s.details) == (0.0, False, "missing: '30 Days'", {"missing": ["30 Days"]})


def test_contains_with_a_list_needs_every_value() -> None:
    s = score("contains", {"value": ["refund", "30 days", "receipt"]}, "A refund within 30 days.")
    assert (s.value, s.details) == (0.0, {"missing": ["receipt"]})


def test_contains_scalar_shorthand() -> None:
    assert score("contains", "refund", "no refund").passed is True


def test_icontains_ignores_case_with_unicode_folding() -> None:
    assert score("icontains", {"value": "30 DAYS"}, "within 30 days").passed is True
    assert score("icontains", {"value": "STRASSE"}, "Hauptstraße 1").passed is True


def test_not_icontains_catches_a_refusal() -> None:
    s = score("not_icontains", {"value": "i don't know", "name": "no_refusal"}, "I don't know.")
    assert (s.value, s.passed) == (0.0, False)
    assert score("not_icontains", {"value": "i don't know"}, "30 days").passed is True


def test_regex_searches_anywhere_and_records_the_match() -> None:
    s = score("regex", {"pattern": r"\d+ days"}, "You have 30 days to return it.")
    assert (s.value, s.passed, s.details) == (1.0, True, {"match": "30 days"})
    miss = score("regex", r"\d+ days", "thirty days")
    assert (miss.value, miss.reason) == (0.0, r"no match for /\d+ days/")


def test_regex_flags() -> None:
    assert score("regex", {"pattern": "^refund"}, "REFUND approved").passed is False
    assert score("regex", {"pattern": "^refund", "flags": ["IGNORECASE"]}, "REFUND approved").passed is True
    assert score("regex", {"pattern": "^ok$", "flags": ["MULTILINE"]}, "first\nok\nlast").passed is True


def test_regex_unknown_flag_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown regex flag"):
        build_metric("regex", {"pattern": "x", "flags": ["VERBOSE"]})


def test_not_regex() -> None:
    assert score("not_regex", {"pattern": "(?i)as an ai"}, "As an AI, I cannot").passed is False
    assert score("not_regex", {"pattern": "(?i)as an ai"}, "Sure: 30 days").passed is True


SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def test_json_schema_accepts_valid_json() -> None:
    assert score("json_schema", {"schema": SCHEMA}, '{"answer": "30 days"}') == Score(1.0, True, None, {"errors": []})


def test_json_schema_accepts_a_fenced_block() -> None:
    assert score("json_schema", {"schema": SCHEMA}, '```json\n{"answer": "yes"}\n```').passed is True


def test_json_schema_reports_each_violation() -> None:
    s = score("json_schema", {"schema": SCHEMA}, '{"answer": 30}')
    assert (s.value, s.reason) == (0.0, "answer: 30 is not of type 'string'")
    s = score("json_schema", {"schema": SCHEMA}, "{}")
    assert s.reason == "<root>: 'answer' is a required property"


def test_json_schema_on_text_that_is_not_json() -> None:
    s = score("json_schema", {"schema": SCHEMA}, "The answer is 30 days.")
    assert (s.value, s.passed) == (0.0, False)
    assert s.reason.startswith("not JSON: Expecting value")


def test_json_schema_rejects_an_invalid_schema_at_build() -> None:
    with pytest.raises(ValidationError, match="invalid JSON Schema"):
        build_metric("json_schema", {"schema": {"type": "objekt"}})


def test_not_json_schema() -> None:
    assert score("not_json_schema", {"schema": SCHEMA}, "plain text").passed is True


def test_latency_within_and_over_the_limit() -> None:
    assert score("latency", {"max_ms": 500}, "x", latency_ms=499.9).passed is True
    s = score("latency", 500, "x", latency_ms=812.4)
    assert (s.value, s.passed, s.reason, s.details) == (0.0, False, "812 ms > 500 ms", {"latency_ms": 812.4})


def test_latency_unknown_is_null_not_a_failure() -> None:
    assert score("latency", {"max_ms": 500}, "x", latency_ms=None) == Score(
        None, None, "not applicable: no latency recorded", {"not_applicable": True})
    s = score("not_latency", {"max_ms": 500}, "x", latency_ms=None)
    assert (s.value, s.passed) == (None, None)


def test_no_output_is_a_null_score_with_a_reason() -> None:
    assert score("contains", {"value": "x"}, None) == Score(None, None, "no output (target error)", {})


def test_name_option_renames_the_score_key() -> None:
    metric = build_metric("contains", {"value": "30", "name": "mentions_30"})
    assert metric.keys() == ["mentions_30"]
    assert metric.config() == {"kind": "contains", "name": "mentions_30", "value": "30"}


def test_negation_only_applies_to_deterministic_metrics() -> None:
    with pytest.raises(ConfigError) as err:
        build_metric("not_bleu", None)
    assert err.value.message == "unknown metric 'not_bleu'"


def test_threshold_decides_passed_for_fractional_values() -> None:
    from llmeval.metrics.base import Metric, MetricOptions

    class Overlap(Metric):
        kind = "overlap"

        def score_one(self, sample: Result) -> Score:
            want = set((sample.expected or "").split())
            return Score(len(want & set((sample.output or "").split())) / len(want))

    metric = Overlap(MetricOptions(threshold=0.5))
    rows = asyncio.run(metric.score_all(
        [result("a b", expected="a b c d"), result("a", expected="a b c d")], ScoringContext()))
    assert [(r["overlap"].value, r["overlap"].passed) for r in rows] == [(0.5, True), (0.25, False)]


def test_many_cases_score_in_order() -> None:
    metric = build_metric("exact_match", None)
    samples = [result(str(i % 3), expected="0") for i in range(300)]
    rows = asyncio.run(metric.score_all(samples, ScoringContext()))
    assert [r["exact_match"].value for r in rows] == [1.0 if i % 3 == 0 else 0.0 for i in range(300)]
