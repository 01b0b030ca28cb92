"""`not_` checks say why they failed, and never give a passing case the reason of the other outcome:
in results.jsonl, junit.xml and report.html, through `llmeval run`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.clirunhelpers import invoke, module, only_run_dir, results, write
from tests.reportdata import readable

OUTPUTS = {"fine": "All good: 30 days.", "json": '{"error": "boom"}', "refusal": "I don't know."}
REASONS = {
    # case -> metric -> reason (None: passed)
    "fine": {"no_error": None, "not_is_json": None, "no_refusal": None, "not_regex": None},
    "json": {"no_error": "contains: 'error'", "not_is_json": "output is JSON (an object)", "no_refusal": None,
             "not_regex": "matches /boom|know/: 'boom'"},
    "refusal": {"no_error": None, "not_is_json": None, "no_refusal": "contains: \"I don't KNOW\"",
                "not_regex": "matches /boom|know/: 'know'"},
}


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    mod = module(f"OUT = {OUTPUTS!r}\ndef answer(case):\n    return OUT[case.id]\n")
    cases = "\n".join(f"  - {{id: {c}, input: q}}" for c in OUTPUTS)
    write(f"""\
name: negated
targets:
  - {{id: bot, python: "{mod}:answer"}}
metrics:
  - not_contains: {{value: error, name: no_error}}
  - not_is_json
  - not_icontains: {{value: "I don't KNOW", name: no_refusal}}
  - not_regex: 'boom|know'
cases:
{cases}
""")
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "html,junit")
    assert result.exit_code == 0, result.output
    return only_run_dir()


def test_not_checks_give_the_reason_of_the_outcome_shown_in_results(ran: Path) -> None:
    got = {r["case_id"]: {k: s["reason"] for k, s in r["scores"].items()} for r in results(ran)}
    assert got == REASONS
    passed = {r["case_id"]: {k: s["passed"] for k, s in r["scores"].items()} for r in results(ran)}
    assert passed == {c: {k: v is None for k, v in m.items()} for c, m in REASONS.items()}


def test_junit_failures_carry_the_not_check_reasons(ran: Path) -> None:
    cases = {tc.get("name"): tc for tc in ET.parse(ran / "junit.xml").iter("testcase")}
    fine = next(tc for name, tc in cases.items() if name.startswith("fine"))
    assert fine.find("failure") is None
    refusal = next(tc for name, tc in cases.items() if name.startswith("refusal"))
    body = refusal.find("failure").text  # type: ignore[union-attr]
    assert "no_refusal = 0: contains: \"I don't KNOW\"" in body, body
    body = next(tc for name, tc in cases.items() if name.startswith("json")).find("failure").text  # type: ignore[union-attr]
    assert "not_is_json = 0: output is JSON (an object)" in body, body
    assert "missing" not in body


def test_the_html_report_shows_the_not_check_reasons(ran: Path) -> None:
    page = readable((ran / "report.html").read_text())
    assert "contains: 'error'" in page and "output is JSON (an object)" in page
    assert "missing: " not in page
