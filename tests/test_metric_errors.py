"""A score that could not be computed is a recorded metric error (issue 10): written with its kind,
read back by every command, counted apart from not-applicable scores and failed target calls, gated
(`allow_missing`), shown in every report; an empty expected answer is a value; batched metrics keep
the cases that did not fail."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.config.spec import GateSpec
from llmeval.decide.gates import evaluate_gates
from llmeval.metrics.registry import build_metric
from llmeval.results.records import ErrorInfo, Result, Score
from llmeval.results.summary import build_summary, metric_summary
from tests.metrichelpers import result, score_all
from tests.reportdata import case_data
from tests.runfactory import write_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Any:
    res = runner.invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def scored(case_id: str, score: Score | None, error: bool = False) -> Result:
    """A result of target t with one `m` score (or a failed target call)."""
    r = Result(case_id, "t", 0, "q", "a", None, None if error else "out", 10.0,
               error=ErrorInfo("timeout", "no answer within 1 s") if error else None)
    r.scores = {} if error or score is None else {"m": score}
    r.passed = not error and score is not None and score.error is None and score.passed is not False
    return r


JUDGE_ERROR = Score(None, None, "judge error: server_error: overloaded (after 5 attempts)", error="judge")
NOT_APPLICABLE = Score(None, None, "not applicable: no factual claims", {"not_applicable": True})
MIXED = [scored("a", Score(0.8)), scored("b", JUDGE_ERROR), scored("c", NOT_APPLICABLE), scored("d", None, error=True)]


# --- the record ---------------------------------------------------------------------------


def test_a_failed_score_is_written_with_its_kind_and_read_back() -> None:
    line = scored("b", JUDGE_ERROR).to_dict()
    assert line["scores"]["m"] == {"value": None, "passed": None, "reason": JUDGE_ERROR.reason, "details": {},
                                   "error": "judge"}
    assert "error" not in scored("a", Score(0.8)).to_dict()["scores"]["m"]  # additive: only on failed scores
    back = Result.from_dict(json.loads(json.dumps(line))).scores["m"]
    assert (back.error, back.reason, back.not_applicable) == ("judge", JUDGE_ERROR.reason, False)
    assert Score.from_dict(NOT_APPLICABLE.to_dict()).not_applicable


@pytest.mark.parametrize(("reason", "kind"), [
    ("judge error: timeout: no answer within 60 s (after 5 attempts)", "judge"),
    ("unparseable judge answer: no JSON object found; answer with a single JSON object", "unparseable"),
    ("metric error: AttributeError: BertTokenizer has no attribute build_inputs_with_special_tokens", "metric"),
    ("prompt template error: 'x' is undefined", "template"),
    ("not applicable: no contexts", None),
    ("no output (target error)", None),
])
def test_runs_written_before_the_marker_are_read_with_their_errors(reason: str, kind: str | None) -> None:
    assert Score.from_dict({"value": None, "passed": None, "reason": reason, "details": {}}).error == kind


# --- the summary and the gates -------------------------------------------------------------


def test_the_summary_counts_metric_errors_missing_and_not_applicable_scores_apart() -> None:
    assert metric_summary(MIXED, "m") | {"ci95": None} == {
        "mean": 0.8, "ci95": None, "n": 1, "n_cases": 1, "n_null": 2, "n_errors": 1, "n_missing": 2,
        "first_error": JUDGE_ERROR.reason, "pass_rate": None}
    metric = build_metric("contains", {"value": "x", "name": "m"})
    entry = build_summary(MIXED, [metric], ["t"])["t"]
    # a: scored, c: not applicable (neither fails the case); b: metric error, d: target error
    assert (entry["errors"], entry["metric_errors"], entry["pass_rate"]) == (1, 1, 0.5)


def gates_for(**gate: Any) -> list[Any]:
    metric = build_metric("contains", {"value": "x", "name": "m"})
    summary = build_summary(MIXED, [metric], ["t"])
    return evaluate_gates([GateSpec(metric="m", **gate)], summary, ["t"])


def test_a_gate_over_a_metric_with_missing_scores_fails_and_says_why() -> None:
    [g] = gates_for(min=0.5)
    # 0.8 >= 0.5 on the one scored case, but a judge error and a failed target call left 2 of 3 unscored;
    # the not-applicable case is not missing
    assert (g.value, g.passed) == (0.8, False)
    assert g.note == ("fails: 2 of 3 results have no m score: 1 metric error (first: judge error: server_error: "
                      "overloaded (after 5 attempts)); 1 without output (the target call failed); set allow_missing "
                      "on the gate to accept missing scores")
    assert g.details == {"missing": 2, "of": 3, "allowed": 0}


@pytest.mark.parametrize(("allow", "allowed", "passed"), [(1, 1, False), (2, 2, True), (0.5, 1, False),
                                                          (0.7, 2, True), (1.0, 3, True)])
def test_allow_missing_is_a_count_or_a_fraction_of_the_results(allow: float, allowed: int, passed: bool) -> None:
    [g] = gates_for(min=0.5, allow_missing=allow)  # a fraction is of the 3 results that should have a score
    assert (g.passed, g.details["allowed"]) == (passed, allowed)
    if passed:
        assert g.note.endswith(f"1 without output (the target call failed) (allowed: {allowed})")
    else:
        assert f"; allow_missing {allow!r} allows {allowed}" in g.note


def test_missing_scores_fail_max_and_unchecked_max_drop_gates_too() -> None:
    [g] = gates_for(max=0.9)
    assert not g.passed and g.note.startswith("fails: 2 of 3 results have no m score")
    [d] = gates_for(max_drop=0.05)
    assert not d.passed and d.note.endswith("; not checked: no --baseline given")


def test_a_gate_on_a_metric_that_is_not_applicable_anywhere_has_nothing_missing() -> None:
    metric = build_metric("contains", {"value": "x", "name": "m"})
    rs = [scored("a", Score(0.9)), scored("c", NOT_APPLICABLE)]
    [g] = evaluate_gates([GateSpec(metric="m", min=0.5)], build_summary(rs, [metric], ["t"]), ["t"])
    assert (g.passed, g.note) == (True, None)


SUITE = """\
    name: s
    targets: [{{id: rec, outputs: out.jsonl}}]
    cases: [{{id: a, input: q, expected: x}}]
    metrics: [exact_match]
    gates:
      - {gate}
    """


@pytest.mark.parametrize(("gate", "message"), [
    ("{metric: pass_rate, min: 0.9, allow_missing: 2}",
     "suite.yaml:6:35: allow_missing applies to gates on metric scores, not to 'pass_rate'\n"
     "  hint: a target-level value has no per-case scores to miss; remove allow_missing"),
    ("{metric: exact_match, min: 0.9, allow_missing: 1.5}",
     "suite.yaml:6:52: gates[0].allow_missing: a fraction allow_missing must be between 0 and 1 (a count is a "
     "whole number)"),
    ("{metric: exact_match, min: 0.9, allow_missing: -1}",
     "suite.yaml:6:52: gates[0].allow_missing: allow_missing must be 0 or more"),
    ("{metric: exact_match, min: 0.9, allow_missing: yes}",
     "suite.yaml:6:52: gates[0].allow_missing: allow_missing is a count of results (e.g. 2) or a fraction of "
     "them (e.g. 0.05)"),
])
def test_allow_missing_is_checked_at_load_time(gate: str, message: str) -> None:
    Path("out.jsonl").write_text("")  # the recorded outputs the suite names (checked at load)
    Path("suite.yaml").write_text(textwrap.dedent(SUITE.format(gate=gate)))
    res = invoke("validate", "suite.yaml")
    assert (res.exit_code, res.stderr) == (2, f"{message}\n")


def test_allow_missing_as_a_count_or_a_fraction_validates() -> None:
    Path("out.jsonl").write_text("")  # the recorded outputs the suite names (checked at load)
    for gate in ("{metric: exact_match, min: 0.9, allow_missing: 3}", "{metric: exact_match, min: 0.9, "
                                                                      "allow_missing: 0.05}"):
        Path("suite.yaml").write_text(textwrap.dedent(SUITE.format(gate=gate)))
        assert invoke("validate", "suite.yaml").exit_code == 0
    schema = json.loads(invoke("schema").stdout)
    assert "allow_missing" in schema["$defs"]["GateSpec"]["properties"]


# --- reports ------------------------------------------------------------------------------


def errored_run(tmp_path: Path) -> Path:
    results = [scored(c, Score(0.9, True)) for c in "ace"] + [scored("b", JUDGE_ERROR), scored("d", JUDGE_ERROR)]
    results[-1].case_id, results[-2].case_id = "d", "b"
    run_dir = write_run(tmp_path, "r1", results, ["m"], {"m": 0.5})
    m = json.loads((run_dir / "run.json").read_text())
    m["summary"]["t"]["metric_errors"] = 2
    (run_dir / "run.json").write_text(json.dumps(m))
    return run_dir


def test_reports_show_metric_errors_per_case_and_per_metric(tmp_path: Path) -> None:
    run_dir = errored_run(tmp_path)
    assert invoke("report", str(run_dir), "--format", "html,md,junit").exit_code == 0
    md = (run_dir / "summary.md").read_text()
    assert "| m | 0.900 [0.90, 0.90] · 100% (**2 errors**) |" in md
    assert "| metric errors | 2 |" in md
    why = "judge error: server\\_error: overloaded \\(after 5 attempts\\)"  # Markdown-escaped
    assert f"- ⚠️ m on t: 2 metric errors; first: {why}" in md
    assert f"| `b` | t | m: {why} | out |" in md
    html = (run_dir / "report.html").read_text()
    assert '<div class="sub errtext" title="judge error: server_error: overloaded (after 5 attempts)">2 errors</div>' \
        in html and '<th scope="row">metric errors</th><td class="num" colspan="2">2</td>' in html
    data = case_data(html)
    b = next(r for r in data["rows"] if r["i"] == "b")["c"][0]
    assert b["me"] == 1 and b["s"][0][0] is None and b["s"][0][3] == 1
    assert data["X"][b["s"][0][2]] == JUDGE_ERROR.reason
    assert "METRIC ERROR" in (Path(__file__).parent.parent / "llmeval/report/assets/report.js").read_text()
    suite = ET.fromstring((run_dir / "junit.xml").read_text()).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "0", "2")
    error = suite.find("testcase[@name='d']/error")
    assert error.get("type") == "llmeval.metric_error"
    assert error.get("message") == f"1 metric could not be computed: m: {JUDGE_ERROR.reason}"


# --- a whole run: console, merge, rescore -------------------------------------------------------


def raising_suite() -> None:
    Path("metrics").mkdir()
    Path("metrics/brittle.py").write_text(textwrap.dedent("""\
        from llmeval import register_metric


        @register_metric('brittle')
        def brittle(result):
            \"\"\"Breaks on case c3.\"\"\"
            if result.case_id == "c3":
                raise ZeroDivisionError("division by zero")
            return 1.0
        """))
    Path("out.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "output": "x"}) + "\n" for i in range(8)))
    cases = ", ".join(f"{{id: c{i}, input: q}}" for i in range(8))
    Path("suite.yaml").write_text(f"name: flaky\ntargets: [{{id: rec, outputs: out.jsonl}}]\ncases: [{cases}]\n"
                                  "metrics: [brittle]\ngates: [{metric: brittle, min: 0.5, allow_missing: 1}]\n")


def test_the_console_summary_shows_metric_errors_and_the_first_reason() -> None:
    raising_suite()
    res = invoke("run", "suite.yaml", "-o", "runs", "--format", "")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())  # rich wraps long lines at the terminal's width
    assert "│ brittle │ 1.000 [1.00, 1.00] (1 error) │" in text and "│ metric errors │ 1 │" in text
    assert "brittle on rec: 1 metric error; first: metric error: ZeroDivisionError: division by zero" in text
    assert ("PASS rec: brittle = 1.000 (>= 0.500) 1 of 8 results have no brittle score: 1 metric error (first: metric "
            "error: ZeroDivisionError: division by zero) (allowed: 1)") in text


def test_merge_and_rescore_read_metric_errors_back() -> None:
    raising_suite()
    for i in (1, 2):
        assert invoke("run", "suite.yaml", "-o", "shards", "-q", "--format", "", "--shard", f"{i}/2").exit_code == 0
    merged = invoke("merge", *map(str, sorted(Path("shards").iterdir())), "-o", "merged", "-q", "--format", "junit")
    assert merged.exit_code == 0, merged.output
    [run_dir] = list(Path("merged").iterdir())
    m = json.loads((run_dir / "run.json").read_text())
    assert (m["summary"]["rec"]["brittle"]["n_errors"], m["summary"]["rec"]["metric_errors"]) == (1, 1)
    assert m["gates"][0]["note"].startswith("1 of 8 results have no brittle score")
    suite = ET.fromstring((run_dir / "junit.xml").read_text()).find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("9", "1")
    again = invoke("rescore", str(run_dir), "-o", "rescored", "-q", "--format", "", "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)["summary"]["rec"]
    assert (summary["brittle"]["n_errors"], summary["metric_errors"], summary["pass_rate"]) == (1, 1, 0.875)


# --- an empty expected answer ------------------------------------------------------------------


def test_an_empty_expected_answer_is_a_value_and_a_missing_one_is_not() -> None:
    Path("out.jsonl").write_text('{"id": "a", "output": ""}\n{"id": "b", "output": "something"}\n')
    Path("data.jsonl").write_text('{"id": "c", "input": "q", "expected": ""}\n')
    suite = ("name: empty\ntargets: [{id: rec, outputs: out.jsonl}]\n"
             "cases: [{id: a, input: q, expected: ''}, {id: b, input: q, expected: ''}]\n"
             "dataset: {path: data.jsonl}\nmetrics: [exact_match, bleu, chrf, rouge]\n")
    Path("suite.yaml").write_text(suite)
    assert invoke("validate", "suite.yaml").exit_code == 0
    Path("out.jsonl").write_text(Path("out.jsonl").read_text() + '{"id": "c", "output": "x"}\n')
    res = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert res.exit_code == 0, res.output
    [run_dir] = list(Path("runs").iterdir())
    rows = {r["case_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    assert [rows[c]["expected"] for c in "abc"] == ["", "", ""]
    assert [rows[c]["scores"]["exact_match"]["value"] for c in "abc"] == [1.0, 0.0, 0.0]
    # sacrebleu and rouge-score define an empty reference (or output) as 0, matched or not
    assert {(k, s["value"], "error" in s) for r in rows.values() for k, s in r["scores"].items()
            if k != "exact_match"} == {(k, 0.0, False) for k in ("bleu", "chrf", "rouge1", "rouge2", "rougeL",
                                                                  "rougeLsum")}
    Path("suite.yaml").write_text(suite.replace("{id: b, input: q, expected: ''}", "{id: b, input: q}"))
    res = invoke("validate", "suite.yaml")
    assert (res.exit_code, res.stderr.splitlines()[0]) == (
        2, "suite.yaml:5:11: metric 'exact_match' needs 'expected', but case 'b' (line 3) has none")
    Path("suite.yaml").write_text(suite.replace("{id: b, input: q, expected: ''}", "{id: b, input: q, expected: []}"))
    assert "case 'b' (line 3) has none" in invoke("validate", "suite.yaml").stderr  # no references at all


# --- batched metrics keep the cases that did not fail ---------------------------------------------


def test_bertscore_scores_an_empty_text_0_by_bert_scores_own_convention() -> None:
    pytest.importorskip("bert_score")
    import inspect

    from bert_score.utils import greedy_cos_idf

    source = inspect.getsource(greedy_cos_idf)  # the convention this follows, in the pinned bert-score itself
    assert "Empty candidate sentence detected; setting raw BERTscores to 0." in source
    assert "Empty reference sentence detected; setting raw BERTScores to 0." in source
    metric = build_metric("bertscore", {"device": "cpu"})
    samples = [result("", "The cat sat."), result(" \n\t", "The cat sat."), result("The cat sat.", ""),
               result("The cat sat.", ["", "A cat sat."]), result("The cat sat.", "A cat sat."), result(None, "x")]
    got = [s["bertscore"] for s in score_all(metric, samples)]
    assert [(s.value, s.details.get("empty"), s.error) for s in got[:3]] == [
        (0.0, "output", None), (0.0, "output", None), (0.0, "reference", None)]
    assert got[0].reason == "empty output: BERTScore is 0 (bert-score's convention for an empty text)"
    assert (got[0].details["precision"], got[0].details["recall"], got[0].details["f1"]) == (0.0, 0.0, 0.0)
    # with several references bert-score keeps the best of each of P, R, F; an empty one contributes 0
    assert got[3].value == pytest.approx(got[4].value, abs=1e-6) and got[3].value > 0.5
    assert got[5].value is None and got[5].error is None  # no output: the target's error, not the metric's


def test_hf_evaluate_scores_each_example_alone_when_the_batch_raises(tmp_path: Path) -> None:
    pytest.importorskip("evaluate")
    folder = tmp_path / "picky"
    folder.mkdir()
    (folder / "picky.py").write_text(textwrap.dedent('''\
        import datasets
        import evaluate


        class Picky(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(description="", citation="", inputs_description="",
                                           features=datasets.Features({"predictions": datasets.Value("string"),
                                                                       "references": datasets.Value("string")}))

            def _compute(self, predictions, references):
                if "boom" in predictions:
                    raise ValueError("cannot score boom")
                return {"picky": [float(p == r) for p, r in zip(predictions, references)]}
        '''))
    metric = build_metric("hf_evaluate", {"name": str(folder)})
    got = [s["picky"] for s in score_all(metric, [result("a", "a"), result("boom", "a"), result("b", "a")])]
    assert [s.value for s in got] == [1.0, None, 0.0]
    assert (got[1].error, got[1].reason) == ("metric", "metric error: picky failed: ValueError: cannot score boom")


def test_compare_says_which_cases_a_metric_error_left_out(tmp_path: Path) -> None:
    from llmeval.decide.compare import compare_runs
    from llmeval.results.runlog import load_run

    clean = write_run(tmp_path, "r0", [scored(c, Score(0.9, True)) for c in "abcde"], ["m"], {"m": 0.5})
    cmp = compare_runs(load_run(clean), load_run(errored_run(tmp_path)), resamples=1000)
    assert cmp.metric("t", "m").n == 3
    assert cmp.notes == ["m on t: no value (metric error) on 2 paired case(s) of the candidate and 0 of the "
                         "baseline; they are left out of its comparison"]
