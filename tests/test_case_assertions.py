"""Per-case assertions (`assert:` on a case) through `llmeval run` and `llmeval validate`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI
from tests.judgehelpers import in_prompt
from tests.reportdata import case_data
from tests.targethelpers import module, run

UPPER = "def answer(case):\n    return str(case.input).upper()\n"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def suite(mod: str, cases: str, extra: str = "") -> str:
    return f"""\
name: asserts
targets:
  - {{id: up, python: "{mod}:answer"}}
cases:
{textwrap.indent(textwrap.dedent(cases), "  ")}
metrics:
  - icontains: {{value: "o"}}
{extra}"""


def validate(text: str) -> tuple[int, str]:
    Path("suite.yaml").write_text(text, encoding="utf-8")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    return res.exit_code, res.output


def test_an_assertion_scores_its_case_only_and_is_summarised_over_the_cases_that_have_it() -> None:
    mod = module(UPPER)
    ran = run(suite(mod, """\
        - id: a
          input: hello world
          assert:
            - contains: HELLO
            - not_contains: {value: WORLD, name: no_world}
        - id: b
          input: goodbye
          assert: [{contains: NOPE}]
        - {id: c, input: ok}
        """))
    assert ran.code == 0, ran.stdout
    a, b, c = ran.by_case["a"], ran.by_case["b"], ran.by_case["c"]
    assert set(a["scores"]) == {"icontains", "contains", "no_world"}
    assert (a["scores"]["contains"]["value"], a["scores"]["no_world"]["value"]) == (1.0, 0.0)
    assert b["scores"]["contains"] == {"value": 0.0, "passed": False, "reason": "missing: 'NOPE'",
                                       "details": {"missing": ["NOPE"]}}
    assert set(c["scores"]) == {"icontains"}
    assert [r["passed"] for r in (a, b, c)] == [False, False, True]
    summary = ran.manifest["summary"]["up"]
    assert summary["contains"]["mean"] == 0.5 and summary["contains"]["n_cases"] == 2
    assert summary["contains"]["scope"] == "case" and "scope" not in summary["icontains"]
    assert summary["no_world"]["n_cases"] == 1
    metrics = {m["name"]: m for m in ran.manifest["metrics"]}
    assert metrics["contains"]["scope"] == "case" and metrics["contains"]["cases"] == ["a", "b"]
    assert [(x["value"], x["cases"]) for x in metrics["contains"]["configs"]] == [("HELLO", ["a"]), ("NOPE", ["b"])]
    assert metrics["no_world"]["kind"] == "not_contains" and metrics["no_world"]["cases"] == ["a"]


def test_a_gate_can_check_a_per_case_metric() -> None:
    mod = module(UPPER)
    ran = run(suite(mod, """\
        - {id: a, input: yes, assert: [{contains: YES}]}
        - {id: b, input: no, assert: [{contains: YES}]}
        """, "gates:\n  - {metric: contains, min: 0.9}\n"))
    assert ran.code == 1
    [gate] = ran.manifest["gates"]
    assert (gate["metric"], gate["value"], gate["passed"]) == ("contains", 0.5, False)


def test_identical_assertions_share_one_metric() -> None:
    mod = module(UPPER)
    ran = run(suite(mod, """\
        - {id: a, input: x, assert: [{regex: '^[A-Z]+$'}]}
        - {id: b, input: y, assert: [{regex: '^[A-Z]+$'}]}
        """))
    [entry] = [m for m in ran.manifest["metrics"] if m["name"] == "regex"]
    assert len(entry["configs"]) == 1 and entry["configs"][0]["cases"] == ["a", "b"]


def test_a_judge_rubric_as_an_assertion(fake_openai: FakeOpenAI) -> None:
    mod = module(UPPER)
    fake_openai.script(in_prompt("Evaluation Form", "Politeness"), "4")
    ran = run(suite(mod, """\
        - id: a
          input: thanks
          assert:
            - geval: {name: polite, criteria: Politeness of the reply, steps: [Rate it.], threshold: 0.5}
        - {id: b, input: bye}
        """, f"judge: {{model: openai/fake-judge, api_base: '{fake_openai.base_url}'}}\n"))
    assert ran.code == 0, ran.stdout
    assert ran.by_case["a"]["scores"]["polite"]["value"] == 0.75
    assert "polite" not in ran.by_case["b"]["scores"]
    judged = [b for b in fake_openai.requests if "Evaluation Form" in json.dumps(b)]
    assert len(judged) == 1 and "THANKS" in json.dumps(judged[0])  # case a only


def test_per_case_metrics_show_in_every_report() -> None:
    mod = module(UPPER)
    Path("suite.yaml").write_text(suite(mod, """\
        - {id: a, input: yes, assert: [{contains: {value: NOPE, name: must_nope}}]}
        - {id: b, input: so}
        """), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", "suite.yaml", "-o", "runs", "-q"])
    assert res.exit_code == 0
    [run_dir] = Path("runs").iterdir()
    md = (run_dir / "summary.md").read_text()
    assert "| must\\_nope \\(per-case, 1 case\\) | 0.000 [0.00, 0.00] · 0% |" in md
    assert "| `a` | up | icontains = 0: missing: 'o' must\\_nope = 0: missing: 'NOPE' | YES |" in md
    junit = (run_dir / "junit.xml").read_text()
    assert 'message="2 metrics failed: icontains = 0; must_nope = 0"' in junit
    html = (run_dir / "report.html").read_text()
    assert "must_nope <span class=\"sub\">per-case, 1 case(s)</span>" in html
    data = case_data(html)
    assert data["keys"] == ["icontains", "must_nope"]
    rows = {r["i"]: r for r in data["rows"]}
    assert rows["a"]["c"][0]["s"][1][:2] == [0.0, 0] and rows["b"]["c"][0]["s"][1] is None


@pytest.mark.parametrize(("cases", "message"), [
    ("- {id: a, input: x, assert: [{contians: y}]}",
     "suite.yaml:5:33: unknown metric 'contians'\n  hint: did you mean 'contains'?\n"),
    ("- {id: a, input: x, assert: [{contains: {valeu: y}}]}",
     "suite.yaml:5:44: unknown option 'valeu' for metric 'contains'\n  hint: did you mean 'value'?\n"),
    ("- {id: a, input: x, assert: [{icontains: y}]}",
     "suite.yaml:5:32: this assertion writes the score 'icontains', which the suite's metrics already write\n"
     "  hint: give the assertion its own `name:` (e.g. name: icontains_case)\n"),
    ("- {id: a, input: x, assert: [{contains: y}, {contains: z}]}",
     "suite.yaml:5:47: two assertions of this case write the score 'contains' (entries 1 and 2)\n"
     "  hint: give one of them a distinct `name:`\n"),
    ("- {id: a, input: x, assert: [exact_match]}",
     "suite.yaml:5:32: metric 'exact_match' needs 'expected', but case 'a' (line 5) has none\n"
     "  hint: add `expected:` to every case (or map it with dataset.fields), or remove the metric\n"),
    ("- {id: a, input: x, assert: [{contains: y}]}\n"
     "- {id: b, input: x, assert: [{regex: {pattern: y, name: contains}}]}",
     "suite.yaml:6:32: the score 'contains' is a contains assertion in case 'a' but a regex one here\n"
     "  hint: one score name means one metric: give this one another `name:`\n"),
    ("- {id: a, input: x, assert: [{geval: {criteria: ok}}]}",
     "suite.yaml:5:32: metric 'geval' needs a judge, but the suite has no `judge:`\n"
     "  hint: add e.g. `judge: {model: openai/gpt-4o-mini}` at the top level\n"),
])
def test_assertion_errors_have_their_position(cases: str, message: str) -> None:
    mod = module(UPPER)
    assert validate(suite(mod, cases)) == (2, message)


def test_validate_counts_a_valid_assertion() -> None:
    mod = module(UPPER)
    code, out = validate(suite(mod, "- {id: a, input: x, assert: [{not_icontains: q}]}"))
    assert (code, out) == (0, "ok: suite.yaml (1 cases, 1 targets, 1 metrics, 0 gates)\n")


def test_rescore_and_merge_keep_per_case_metrics() -> None:
    mod = module(UPPER)
    Path("suite.yaml").write_text(suite(mod, """\
        - {id: a, input: yes, assert: [{contains: YES}]}
        - {id: b, input: no}
        - {id: c, input: ok, assert: [{contains: NOPE}]}
        """), encoding="utf-8")
    for shard in ("1/2", "2/2"):
        assert CliRunner().invoke(app, ["run", "suite.yaml", "-o", "shards", "-q", "--shard", shard]).exit_code == 0
    res = CliRunner().invoke(app, ["merge", *map(str, sorted(Path("shards").iterdir())), "-o", "merged", "-q"])
    assert res.exit_code == 0, res.output
    [merged] = Path("merged").iterdir()
    res = CliRunner().invoke(app, ["rescore", str(merged), "-o", "rescored"])
    assert res.exit_code == 0, res.output
    [rescored] = Path("rescored").iterdir()
    for run_dir in (merged, rescored):
        summary = json.loads((run_dir / "run.json").read_text())["summary"]["up"]["contains"]
        assert (summary["mean"], summary["n_cases"], summary["scope"]) == (0.5, 2, "case")
        rows = {r["case_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
        assert "contains" not in rows["b"]["scores"] and rows["c"]["scores"]["contains"]["value"] == 0.0
