"""`llmeval run` end to end: the run directory, gates and exit codes, --json, --dry-run and
several suites in one command."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.clirunhelpers import UPPER, invoke, module, only_run_dir, results, suite_with, write
from tests.fakes import FakeOpenAI


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # datasets writes its cache here
    return tmp_path


# --- the run directory ------------------------------------------------------------------------


def test_run_directory_has_the_manifest_and_one_line_per_result() -> None:
    write(suite_with(module(UPPER), "[{metric: exact_match, min: 0.5}]"))
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    run_dir = only_run_dir()
    m = json.loads((run_dir / "run.json").read_text())
    assert set(m) >= {"schema_version", "run_id", "status", "suite", "llmeval_version", "git_sha", "started_at",
                      "finished_at", "targets", "judge", "metrics", "gates_spec", "options", "stats", "summary",
                      "gates", "calls"}
    assert (m["schema_version"], m["run_id"], m["status"]) == (1, run_dir.name, "complete")
    assert m["suite"] == {"name": "cli-suite", "path": "suite.yaml", "description": "the CLI tests",
                          "sha256": hashlib.sha256(Path("suite.yaml").read_bytes()).hexdigest()}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["finished_at"])
    assert m["metrics"] == [{"kind": "exact_match", "name": "exact_match", "strip": True, "ignore_case": False,
                             "keys": ["exact_match"]}]
    assert m["gates_spec"] == [{"metric": "exact_match", "min": 0.5, "strict": False, "line": 10}]
    up = m["summary"]["up"]
    assert up["exact_match"]["mean"] == pytest.approx(2 / 3, abs=1e-4)
    assert (up["exact_match"]["n"], up["exact_match"]["pass_rate"]) == (3, pytest.approx(2 / 3, abs=1e-4))
    lo, hi = up["exact_match"]["ci95"]
    assert 0 <= lo <= up["exact_match"]["mean"] <= hi <= 1
    assert (up["n"], up["errors"], up["tokens"]) == (3, 0, {"prompt": 0, "completion": 0})
    assert set(up["latency_ms"]) == {"p50", "p95"}
    [gate] = m["gates"]
    assert {k: gate[k] for k in ("name", "target", "metric", "value", "threshold", "passed", "kind")} == {
        "name": "exact_match >= 0.5", "target": "up", "metric": "exact_match",
        "value": up["exact_match"]["mean"], "threshold": 0.5, "passed": True, "kind": "min"}
    rows = results(run_dir)
    assert [set(r) for r in rows] == [{"case_id", "target", "epoch", "input", "expected", "contexts", "output",
                                       "latency_ms", "usage", "cost_usd", "cached", "error", "scores", "passed",
                                       "tags", "messages", "tool_calls", "expected_tool_calls"}] * 3
    b = next(r for r in rows if r["case_id"] == "b")
    assert (b["output"], b["passed"], b["tags"], b["error"]) == ("NO", False, ["slow"], None)
    assert (b["messages"], b["tool_calls"], b["expected_tool_calls"]) == (None, [], None)
    assert b["scores"] == {"exact_match": {"value": 0.0, "passed": False, "reason": "output differs from expected",
                                           "details": {}}}


def test_failing_gate_exits_1_and_the_table_shows_it() -> None:
    write(suite_with(module(UPPER), "[{metric: exact_match, min: 0.9}, {metric: pass_rate, max: 0.7}]"))
    result = invoke("run", "suite.yaml", "-o", "runs", "--format", "")
    assert result.exit_code == 1
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    out = result.stdout
    assert "exact_match" in out and "up" in out
    assert "FAIL up: exact_match = 0.667 (>= 0.900)" in out
    assert "PASS up: pass_rate = 0.667 (<= 0.700)" in out
    assert f"run directory: {Path('runs') / only_run_dir().name}" in out
    gates = json.loads((only_run_dir() / "run.json").read_text())["gates"]
    assert [(g["metric"], g["passed"]) for g in gates] == [("exact_match", False), ("pass_rate", True)]


def test_gate_on_one_target_only() -> None:
    mod = module(UPPER + "\ndef lower(case):\n    return str(case.input)\n")
    write(f"""\
        name: two
        targets:
          - {{id: up, python: "{mod}:answer"}}
          - {{id: same, python: "{mod}:lower"}}
        cases: [{{id: a, input: yes, expected: yes}}]
        metrics: [exact_match]
        gates: [{{metric: exact_match, min: 1, target: same}}]
        """)
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert result.exit_code == 0
    gates = json.loads((only_run_dir() / "run.json").read_text())["gates"]
    assert [(g["target"], g["passed"]) for g in gates] == [("same", True)]


def test_json_prints_the_summary_on_stdout() -> None:
    write(suite_with(module(UPPER), "[{metric: exact_match, min: 0.9}]"))
    result = invoke("run", "suite.yaml", "-o", "runs", "--json", "--format", "")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"run_id", "run_dir", "suite", "status", "passed", "exit_code", "summary", "gates"}
    assert (doc["suite"], doc["status"], doc["passed"], doc["exit_code"]) == ("cli-suite", "complete", False, 1)
    assert doc["summary"]["up"]["exact_match"]["n"] == 3
    assert doc["run_dir"] == str(only_run_dir())


def test_dry_run_counts_calls_and_calls_nothing(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write("""\
        name: dry
        targets:
          - id: bot
            model: openai/gpt-4o-mini
            api_base: ${FAKE_BASE}
            prompt: "Answer briefly: {{ input }}"
            params: {max_tokens: 100}
        cases: [{id: a, input: one}, {id: b, input: two}, {id: c, input: three}]
        """)
    result = invoke("run", "suite.yaml", "-o", "runs", "--dry-run", "--json", "--epochs", "2")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    [bot] = plan["targets"]
    assert (plan["cases"], plan["epochs"]) == (3, 2)
    assert (bot["calls"], bot["cached"], bot["to_call"]) == (6, 0, 6)
    assert bot["est_prompt_tokens"] > 0 and bot["est_cost_usd"] > 0
    assert fake_openai.calls == 0
    assert not Path("runs").exists()

    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", "--limit", "2").exit_code == 0
    plan = json.loads(invoke("run", "suite.yaml", "--dry-run", "--json").stdout)
    assert (plan["targets"][0]["cached"], plan["targets"][0]["to_call"]) == (2, 1)
    assert fake_openai.calls == 2


def test_dry_run_table() -> None:
    write(suite_with(module(UPPER)))
    result = invoke("run", "suite.yaml", "--dry-run")
    assert result.exit_code == 0
    assert "cli-suite: dry run (3 cases x 1 epochs)" in result.stdout
    assert re.search(r"up\s+│\s+python\s+│\s+3\s+│\s+0\s+│\s+3", result.stdout)


def test_several_suites_in_one_command_each_get_a_run() -> None:
    mod = module(UPPER)
    Path("pass.yaml").write_text(textwrap.dedent(suite_with(mod, "[{metric: pass_rate, min: 0.5}]")))
    Path("fail.yaml").write_text(textwrap.dedent(suite_with(mod, "[{metric: pass_rate, min: 0.9}]"))
                                 .replace("name: cli-suite", "name: strict"))
    result = invoke("run", "pass.yaml", "fail.yaml", "-o", "runs", "--json", "--format", "")
    assert result.exit_code == 1
    runs = json.loads(result.stdout)["runs"]
    assert [(r["suite"], r["exit_code"]) for r in runs] == [("cli-suite", 0), ("strict", 1)]
    assert len(list(Path("runs").iterdir())) == 2


def test_an_invalid_second_suite_stops_before_anything_runs() -> None:
    mod = module(UPPER)
    Path("good.yaml").write_text(textwrap.dedent(suite_with(mod)))
    Path("bad.yaml").write_text("name: bad\ntargets: []\ncases: [{input: x}]\n")
    result = invoke("run", "good.yaml", "bad.yaml", "-o", "runs")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: bad.yaml:2:10: targets: List should have at least 1 item")
    assert not Path("runs").exists()
