"""The fault matrix, scoring rows (issue 10): a judge that answers garbage, answers 500 or answers too
late; one empty output among 50 under BERTScore; a metric that raises on one case, a batched metric
that raises when the batch holds one bad case, a custom metric that raises on every case.

Each row runs `llmeval run` against the local fake servers and checks the recorded error text, the
exit code, and that no result was lost, duplicated or counted as a pass (pass rate, junit.xml counts,
gate verdicts)."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply

runner = CliRunner()
N_JUDGED = 6
GEVAL_PARSE = "the answer must start with the score, a whole number from 1 to 5"
GROUNDED_PARSE = "no JSON object found; answer with a single JSON object"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass
class Outcome:
    """What one `llmeval run` left: exit code, stderr, run.json, results by case id, junit.xml."""

    code: int
    stderr: str
    output: str
    run_dir: Path
    manifest: dict[str, Any]
    rows: dict[str, dict[str, Any]]
    lines: int
    junit: ET.Element

    def summary(self, key: str | None = None, target: str = "rec") -> dict[str, Any]:
        entry = self.manifest["summary"][target]
        return entry if key is None else entry[key]

    def suite(self, target: str = "rec") -> ET.Element:
        return next(s for s in self.junit if s.get("name", "").endswith(f".{target}"))

    def gate(self, index: int = 0) -> dict[str, Any]:
        return self.manifest["gates"][index]

    @property
    def error(self) -> str:
        """What llmeval printed on stderr (litellm may log a warning of its own there too)."""
        return "".join(line + "\n" for line in self.stderr.splitlines() if line.startswith("error: "))


def run(*args: str) -> Outcome:
    before = set(Path("runs").iterdir()) if Path("runs").exists() else set()
    res = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "junit", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    [run_dir] = sorted(set(Path("runs").iterdir()) - before)
    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]
    keys = [(r["case_id"], r["target"], r["epoch"]) for r in lines]
    assert len(keys) == len(set(keys)), "a result is duplicated"
    assert "Traceback" not in res.output + res.stderr
    return Outcome(res.exit_code, res.stderr, res.output, run_dir, json.loads((run_dir / "run.json").read_text()),
                   {r["case_id"]: r for r in lines}, len(lines), ET.fromstring((run_dir / "junit.xml").read_text()))


def counts(suite: ET.Element) -> tuple[int, int, int]:
    """(tests, failures, errors) of a junit testsuite, checked against its testcases."""
    cases = suite.findall("testcase")
    got = (len(cases), sum(1 for c in cases if c.find("failure") is not None),
           sum(1 for c in cases if c.find("error") is not None))
    assert got == (int(suite.get("tests")), int(suite.get("failures")), int(suite.get("errors")))
    return got


def write(text: str) -> None:
    Path("suite.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


# --- the judge ------------------------------------------------------------------------------


def judged_suite(fake: FakeOpenAI, judge_extra: str = "") -> None:
    """Six recorded outputs with contexts, scored by groundedness and G-Eval, one gate on each."""
    Path("out.jsonl").write_text("".join(
        json.dumps({"id": f"c{i}", "output": f"Returns take {20 + i} days.", "contexts": ["Returns take 30 days."]})
        + "\n" for i in range(N_JUDGED)))
    Path("suite.yaml").write_text("\n".join([
        "name: judged",
        "defaults: {retries: 1}",
        "targets: [{id: rec, outputs: out.jsonl}]",
        f"judge: {{model: openai/fake-judge, api_base: '{fake.base_url}', api_key: sk-test{judge_extra}}}",
        "cases:", *(f"  - {{id: c{i}, input: How long do returns take?}}" for i in range(N_JUDGED)),
        "metrics:",
        "  - groundedness: {threshold: 0.5}",
        "  - geval: {name: quality, criteria: Is it right?, steps: [Rate it.], threshold: 0.5}",
        "gates: [{metric: groundedness, min: 0.5}, {metric: quality, min: 0.5}]", ""]))


def assert_judge_failed_everything(out: Outcome, kind: str) -> None:
    """Every case kept, none passed, every score an error of `kind`, exit 3, both gates failed."""
    assert out.lines == N_JUDGED and sorted(out.rows) == [f"c{i}" for i in range(N_JUDGED)]
    assert (out.code, out.manifest["status"]) == (3, "failed")
    for r in out.rows.values():
        assert r["error"] is None and r["output"] is not None  # the outputs are kept
        assert [r["scores"][k]["error"] for k in ("groundedness", "quality")] == [kind, kind]
        assert r["passed"] is False
    first = out.rows["c0"]["scores"]["groundedness"]["reason"]
    assert out.error == (f"error: metric groundedness has no value on any case of target rec (first error: "
                          f"{first}); no value either: quality (rec); run saved in {out.run_dir}\n")
    for key in ("groundedness", "quality"):
        s = out.summary(key)
        assert (s["mean"], s["n"], s["n_null"], s["n_errors"], s["n_missing"]) == (None, 0, N_JUDGED, N_JUDGED,
                                                                                   N_JUDGED)
    assert (out.summary()["pass_rate"], out.summary()["metric_errors"]) == (0.0, 2 * N_JUDGED)
    assert [g["passed"] for g in out.manifest["gates"]] == [False, False]
    assert out.gate(0)["note"].startswith(f"fails: {N_JUDGED} of {N_JUDGED} results have no groundedness score: "
                                          f"{N_JUDGED} metric errors (first: {first})")
    assert counts(out.suite()) == (N_JUDGED + 2, 2, N_JUDGED)  # cases + 2 gates; the gates fail; cases error
    error = out.suite().find("testcase[@name='c0']/error")
    assert error.get("type") == "llmeval.metric_error"
    assert error.get("message").startswith(f"2 metrics could not be computed: groundedness: {first}; quality: ")


def test_a_judge_answering_garbage_fails_the_run(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(None, "lol not json at all")
    judged_suite(fake_openai)
    out = run()
    assert_judge_failed_everything(out, "unparseable")
    g, q = out.rows["c3"]["scores"]["groundedness"], out.rows["c3"]["scores"]["quality"]
    assert g["reason"] == f"unparseable judge answer: {GROUNDED_PARSE}"
    assert q["reason"] == f"unparseable judge answer: {GEVAL_PARSE}"
    assert g["details"]["attempts"] == ["lol not json at all", "lol not json at all"]  # re-asked once
    assert out.manifest["judge_usage"]["errors"] == 0  # every call answered: it is the answers that failed
    assert fake_openai.calls == 2 * 2 * N_JUDGED


def test_a_judge_answering_garbage_counts_toward_max_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(None, "lol not json at all")
    judged_suite(fake_openai)
    out = run("--max-errors", "11")
    assert out.code == 3
    assert out.error == (f"error: 12 errors, more than --max-errors 11: 0 failed target calls, 12 metric errors; "
                          f"run saved in {out.run_dir}\n")


def test_a_judge_answering_500_fails_the_run_the_same_way(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(None, Reply(status=500, error_message="upstream exploded", retry_after=0))
    judged_suite(fake_openai)
    out = run()
    assert_judge_failed_everything(out, "judge")
    reason = out.rows["c0"]["scores"]["quality"]["reason"]
    assert reason.startswith("judge error: server_error: ") and "upstream exploded" in reason
    assert reason.endswith("(after 2 attempts)")
    # one failed call per metric and case, each counted once (as the metric error it left), not twice
    assert out.manifest["judge_usage"]["errors"] == 2 * N_JUDGED
    again = run("--max-errors", "12", "--no-cache")
    assert (again.code, again.manifest["status"]) == (3, "failed")  # still no value on any case
    assert again.error.startswith("error: metric groundedness has no value")
    assert again.summary()["metric_errors"] == 12  # 12 <= --max-errors 12: the count did not trip


def test_a_judge_answering_too_late_fails_the_run_the_same_way(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(None, Reply(content='{"claims": []}', latency_ms=2000))
    judged_suite(fake_openai, ", timeout_s: 0.3")
    out = run()
    assert_judge_failed_everything(out, "judge")
    assert out.rows["c5"]["scores"]["groundedness"]["reason"] == (
        "judge error: timeout: no response within 0.3 s (timeout_s) (after 2 attempts)")


def test_a_judge_failing_on_one_case_fails_only_the_gate(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(lambda b: "20 days" in json.dumps(b), "lol not json at all")
    fake_openai.script("atomic claims", '{"claims": ["Returns take 30 days."]}')
    fake_openai.script("Judge each claim", '{"verdicts": [{"claim": 1, "verdict": "supported"}]}')
    fake_openai.script("Evaluation Form", "4")
    judged_suite(fake_openai)
    out = run()
    assert out.lines == N_JUDGED
    assert out.code == 1 and out.manifest["status"] == "complete"  # measured, but a gate cannot pass on 5 of 6
    assert out.rows["c0"]["scores"]["groundedness"]["error"] == "unparseable" and out.rows["c0"]["passed"] is False
    assert [r["passed"] for k, r in sorted(out.rows.items()) if k != "c0"] == [True] * 5
    assert out.summary()["pass_rate"] == pytest.approx(5 / 6, abs=1e-6)
    assert out.summary("groundedness")["mean"] == 1.0 and out.summary("groundedness")["n_missing"] == 1
    assert [g["passed"] for g in out.manifest["gates"]] == [False, False]
    assert out.gate(0)["note"] == (
        f"fails: 1 of 6 results have no groundedness score: 1 metric error (first: unparseable judge answer: "
        f"{GROUNDED_PARSE}); set allow_missing on the gate to accept missing scores")
    assert counts(out.suite()) == (N_JUDGED + 2, 2, 1)


# --- BERTScore and one empty output ---------------------------------------------------------

BERT_WORDS = "the refund window is thirty days from delivery and items must be unused with a receipt".split()


def bert_suite(outputs: dict[str, str], skip: str | None = None) -> None:
    """50 recorded outputs equal to their references except those in `outputs`; case `skip` left out."""
    refs = {f"c{i:02d}": " ".join(BERT_WORDS[i % 5:i % 5 + 9]) for i in range(50) if f"c{i:02d}" != skip}
    Path("out.jsonl").write_text("".join(json.dumps({"id": k, "output": outputs.get(k, v)}) + "\n"
                                         for k, v in refs.items()))
    Path("suite.yaml").write_text("\n".join([
        "name: bert", "targets: [{id: rec, outputs: out.jsonl}]",
        "cases:", *(f"  - {{id: {k}, input: q, expected: '{v}'}}" for k, v in refs.items()),
        "metrics: [{bertscore: {threshold: 0.5}}]", "gates: [{metric: bertscore, min: 0.5}]", ""]))


def test_one_empty_output_among_50_scores_0_and_the_other_49_keep_their_values() -> None:
    bert_suite({"c17": "", "c18": "worded differently for a change"})
    out = run()
    assert out.lines == 50 and (out.code, out.manifest["status"]) == (0, "complete")
    empty = out.rows["c17"]["scores"]["bertscore"]
    assert (empty["value"], empty["passed"], "error" in empty) == (0.0, False, False)
    assert empty["reason"] == "empty output: BERTScore is 0 (bert-score's convention for an empty text)"
    assert out.rows["c17"]["passed"] is False
    s = out.summary("bertscore")
    assert (s["n"], s["n_null"], s["n_errors"], s["n_missing"]) == (50, 0, 0, 0)
    failed = [k for k, r in out.rows.items() if not r["passed"]]
    assert "c17" in failed and out.summary()["pass_rate"] == pytest.approx(1 - len(failed) / 50, abs=1e-6)
    assert counts(out.suite()) == (51, len(failed), 0)  # 50 cases and the gate; nothing errored

    bert_suite({"c18": "worded differently for a change"}, skip="c17")
    alone = run()
    assert alone.lines == 49
    for k, r in alone.rows.items():
        assert out.rows[k]["scores"]["bertscore"]["value"] == pytest.approx(r["scores"]["bertscore"]["value"],
                                                                            abs=1e-6), k


# --- metrics that raise ---------------------------------------------------------------------


def custom_metric_suite(source: str, gate: str = "min: 0.5") -> str:
    """Five recorded outputs (case b's says "boom"), scored by the custom metric in `source` and by
    `contains`, with a gate on the custom metric; returns the metric's name (each test registers its
    own: user metrics are registered for the whole process)."""
    name = source.split("register_metric('")[1].split("'")[0]
    Path("metrics").mkdir(exist_ok=True)
    Path(f"metrics/{name}.py").write_text(textwrap.dedent(source))
    Path("out.jsonl").write_text("".join(json.dumps({"id": c, "output": o}) + "\n"
                                         for c, o in zip("abcde", ["fine", "fine boom", "fine", "fine", "fine"],
                                                         strict=True)))
    Path("suite.yaml").write_text("\n".join([
        "name: custom", "targets: [{id: rec, outputs: out.jsonl}]",
        "cases: [{id: a, input: q}, {id: b, input: q}, {id: c, input: q}, {id: d, input: q}, {id: e, input: q}]",
        f"metrics: [{name}, {{contains: {{value: fine}}}}]", f"gates: [{{metric: {name}, {gate}}}]", ""]))
    return name


RAISES_ON_BOOM = """\
    from llmeval import register_metric


    @register_metric('picky')
    def picky(result):
        \"\"\"Fails loudly on one case.\"\"\"
        if "boom" in result.output:
            raise KeyError("no such thing")
        return 1.0
    """

BATCH_RAISES_ON_BOOM = """\
    from llmeval import register_metric
    from llmeval.metrics.base import Metric
    from llmeval.results.records import Score


    @register_metric('picky_batch')
    class Picky(Metric):
        \"\"\"A batched metric whose whole batch raises when one case is bad.\"\"\"

        async def score_all(self, samples, ctx):
            if any("boom" in s.output for s in samples):
                raise ValueError("cannot score 'boom'")
            return [{self.name: Score(1.0)} for s in samples]
    """


@pytest.mark.parametrize(("source", "reason"), [
    (RAISES_ON_BOOM, "metric error: KeyError: 'no such thing'"),
    (BATCH_RAISES_ON_BOOM, "metric error: ValueError: cannot score 'boom'"),
], ids=["per-case", "batched"])
def test_a_metric_raising_on_one_case_is_an_error_of_that_case_only(source: str, reason: str) -> None:
    name = custom_metric_suite(source)
    out = run()
    assert out.lines == 5
    assert out.rows["b"]["scores"][name] == {"value": None, "passed": None, "reason": reason, "details": {},
                                               "error": "metric"}
    assert [out.rows[c]["scores"][name]["value"] for c in "acde"] == [1.0] * 4
    assert out.rows["b"]["scores"]["contains"]["value"] == 1.0  # the other metric still scored it
    assert [r["passed"] for _, r in sorted(out.rows.items())] == [True, False, True, True, True]
    assert out.summary()["pass_rate"] == 0.8 and out.summary()["metric_errors"] == 1
    # the gate does not pass on the four cases that happened to be scored
    assert (out.code, out.manifest["status"]) == (1, "complete")
    assert out.gate()["passed"] is False and out.gate()["value"] == 1.0
    assert out.gate()["note"] == (f"fails: 1 of 5 results have no {name} score: 1 metric error (first: {reason}); "
                                  "set allow_missing on the gate to accept missing scores")
    assert counts(out.suite()) == (6, 1, 1)
    assert out.suite().find("testcase[@name='b']/error").get("message") == (
        f"1 metric could not be computed: {name}: {reason}")


def test_allow_missing_lets_a_gate_pass_over_a_counted_metric_error() -> None:
    custom_metric_suite(RAISES_ON_BOOM, "min: 0.5, allow_missing: 1")
    out = run()
    assert out.code == 0 and out.gate()["passed"] is True
    assert out.gate()["note"] == ("1 of 5 results have no picky score: 1 metric error (first: metric error: "
                                  "KeyError: 'no such thing') (allowed: 1)")
    assert counts(out.suite()) == (6, 0, 1)  # the gate passes; the case's error is still shown
    again = run("--max-errors", "0")  # and the error still counts toward --max-errors
    assert again.code == 3 and again.error == (
        f"error: 1 error, more than --max-errors 0: 0 failed target calls, 1 metric error; "
        f"run saved in {again.run_dir}\n")


def test_a_custom_metric_raising_on_every_case_fails_the_run() -> None:
    custom_metric_suite("""\
        from llmeval import register_metric


        @register_metric('always_broken')
        def always_broken(result):
            \"\"\"Always breaks.\"\"\"
            raise RuntimeError("kaput")
        """)
    out = run()
    assert out.lines == 5 and (out.code, out.manifest["status"]) == (3, "failed")
    reasons = {r["scores"]["always_broken"]["reason"] for r in out.rows.values()}
    assert reasons == {"metric error: RuntimeError: kaput"}
    assert out.error == (f"error: metric always_broken has no value on any case of target rec (first error: "
                          f"metric error: RuntimeError: kaput); run saved in {out.run_dir}\n")
    assert out.summary()["pass_rate"] == 0.0 and out.gate()["passed"] is False
    assert counts(out.suite()) == (6, 1, 5)
