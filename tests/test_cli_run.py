"""`llmeval run` end to end: the run directory, gates and exit codes, --json, --dry-run, case
selection (--limit, --tag, -t, --shard), --var, and datasets in every supported format."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli import app
from tests.fakes import FakeOpenAI

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # datasets writes its cache here
    return tmp_path


def module(source: str) -> str:
    name = f"cli_app_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()
    return name


UPPER = "def answer(case):\n    return str(case.input).upper()\n"


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(suite: str) -> None:
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")


def only_run_dir() -> Path:
    [run_dir] = list(Path("runs").iterdir())
    return run_dir


def results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]


def suite_with(mod: str, gates: str = "[]", extra: str = "") -> str:
    return f"""\
        name: cli-suite
        description: the CLI tests
        targets:
          - {{id: up, python: "{mod}:answer"}}
        cases:
          - {{id: a, input: yes, expected: YES, tags: [smoke]}}
          - {{id: b, input: no, expected: nope, tags: [slow]}}
          - {{id: c, input: ok, expected: OK, tags: [smoke, slow]}}
        metrics: [exact_match]
        gates: {gates}
        {extra}
        """


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
                                       "tags"}] * 3
    b = next(r for r in rows if r["case_id"] == "b")
    assert (b["output"], b["passed"], b["tags"], b["error"]) == ("NO", False, ["slow"], None)
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


# --- selecting cases and targets ---------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--limit", "2"], ["a", "b"]),
    (["--tag", "smoke"], ["a", "c"]),
    (["--tag", "slow", "--tag", "smoke"], ["a", "b", "c"]),
    (["--tag", "slow", "--limit", "1"], ["b"]),
])
def test_limit_and_tag_select_cases(args: list[str], expected: list[str]) -> None:
    write(suite_with(module(UPPER)))
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args).exit_code == 0
    assert sorted(r["case_id"] for r in results(only_run_dir())) == expected
    options = json.loads((only_run_dir() / "run.json").read_text())["options"]
    assert options["limit"] == (int(args[args.index("--limit") + 1]) if "--limit" in args else None)


def test_tag_that_selects_nothing_is_an_error() -> None:
    write(suite_with(module(UPPER)))
    result = invoke("run", "suite.yaml", "-o", "runs", "--tag", "nightly")
    assert (result.exit_code, result.stderr) == (2, "error: no cases selected (tags: nightly)\n")


def test_target_flag_selects_targets() -> None:
    mod = module(UPPER + "\ndef lower(case):\n    return str(case.input)\n")
    write(f"""\
        name: two
        targets:
          - {{id: up, python: "{mod}:answer"}}
          - {{id: same, python: "{mod}:lower"}}
        cases: [{{id: a, input: x}}]
        """)
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", "-t", "same").exit_code == 0
    assert [r["target"] for r in results(only_run_dir())] == ["same"]
    result = invoke("run", "suite.yaml", "-o", "runs", "-t", "down")
    assert (result.exit_code, result.stderr) == (
        2, "error: unknown target(s) down for suite two\n  hint: targets: up, same\n")


def test_shards_split_cases_disjointly() -> None:
    mod = module(UPPER)
    cases = ", ".join(f"{{id: c{i}, input: q{i}}}" for i in range(40))
    write(f"""\
        name: sharded
        targets: [{{id: up, python: "{mod}:answer"}}]
        cases: [{cases}]
        """)
    seen = []
    for shard in ("1/3", "2/3", "3/3"):
        out = f"runs-{shard[0]}"
        assert invoke("run", "suite.yaml", "-o", out, "-q", "--format", "", "--shard", shard).exit_code == 0
        [run_dir] = list(Path(out).iterdir())
        seen.append({r["case_id"] for r in results(run_dir)})
    assert all(seen)
    assert set().union(*seen) == {f"c{i}" for i in range(40)}
    assert sum(map(len, seen)) == 40


def test_var_overrides_suite_vars_in_templates(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write("""\
        name: vars
        vars: {tone: formal}
        targets:
          - {id: bot, model: openai/fake-model, api_base: "${FAKE_BASE}", prompt: "[{{ vars.tone }}] {{ input }}"}
        cases: [{id: a, input: hi}]
        """)
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", "--var", "tone=casual").exit_code == 0
    assert fake_openai.requests[0]["messages"][0]["content"] == "[casual] hi"
    assert json.loads((only_run_dir() / "run.json").read_text())["options"]["vars"] == {"tone": "casual"}
    bad = invoke("run", "suite.yaml", "--var", "tone")
    assert (bad.exit_code, bad.stderr) == (2, "error: --var expects KEY=VALUE, got 'tone'\n")


# --- datasets ---------------------------------------------------------------------------------

ROWS = [
    {"qid": "q1", "question": "yes", "answer": "YES", "passages": ["p1", "p2"], "topic": "a"},
    {"qid": "q2", "question": "no", "answer": "NO", "passages": ["p3"], "topic": "b"},
]


def write_dataset(fmt: str) -> str:
    if fmt == "jsonl":
        Path("qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        Path("qa.json").write_text(json.dumps({"data": ROWS}))
    else:
        import pandas as pd

        frame = pd.DataFrame(ROWS)
        if fmt == "csv":
            frame.drop(columns=["passages"]).to_csv("qa.csv", index=False)
        else:
            frame.to_parquet("qa.parquet")
    return f"qa.{fmt}"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_dataset_formats_with_field_mapping(fmt: str) -> None:
    path = write_dataset(fmt)
    contexts = "" if fmt == "csv" else ", contexts: passages"
    write(f"""\
        name: data
        targets: [{{id: up, python: "{module(UPPER)}:answer"}}]
        dataset:
          path: {path}
          fields: {{id: qid, input: question, expected: answer{contexts}}}
          tags: [{fmt}]
        metrics: [exact_match]
        """)
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert result.exit_code == 0, result.output
    rows = {r["case_id"]: r for r in results(only_run_dir())}
    assert sorted(rows) == ["q1", "q2"]
    assert (rows["q1"]["input"], rows["q1"]["expected"], rows["q1"]["tags"]) == ("yes", "YES", [fmt])
    assert rows["q1"]["contexts"] == (None if fmt == "csv" else ["p1", "p2"])
    assert all(r["passed"] for r in rows.values())


def test_dataset_ids_derived_from_the_input_are_stable() -> None:
    from llmeval.loader import load_suite

    Path("qa.jsonl").write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in ROWS))
    write("""\
        name: data
        targets: [{id: rec, outputs: qa.jsonl}]
        dataset: {path: qa.jsonl, fields: {input: question}}
        """)
    first = {c.input: c.id for c in load_suite("suite.yaml").cases}
    Path("qa.jsonl").write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in reversed(ROWS)))
    second = {c.input: c.id for c in load_suite("suite.yaml").cases}
    assert first == second
    assert all(re.fullmatch(r"c-[0-9a-f]{10}", i) for i in first.values())
    assert len(set(first.values())) == 2


def test_dataset_limit_and_inline_cases_together() -> None:
    Path("qa.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "input": f"q{i}"}) + "\n" for i in range(10)))
    write(f"""\
        name: data
        targets: [{{id: up, python: "{module(UPPER)}:answer"}}]
        cases: [{{id: inline, input: first}}]
        dataset: {{path: qa.jsonl, limit: 3}}
        """)
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "").exit_code == 0
    assert sorted(r["case_id"] for r in results(only_run_dir())) == ["d0", "d1", "d2", "inline"]


def test_dataset_row_without_the_input_column() -> None:
    Path("qa.jsonl").write_text('{"prompt": "x"}\n')
    write("""\
        name: data
        targets: [{id: rec, outputs: qa.jsonl}]
        dataset: {path: qa.jsonl}
        """)
    result = invoke("validate", "suite.yaml")
    assert (result.exit_code, result.stderr) == (
        2, "suite.yaml:3:10: dataset row 1 has no column 'input' (columns: prompt)\n"
           "  hint: map the input column with dataset.fields.input\n")


def test_dataset_with_invalid_json_line() -> None:
    Path("qa.jsonl").write_text('{"input": "x"}\n{"input": \n')
    write("""\
        name: data
        targets: [{id: rec, outputs: qa.jsonl}]
        dataset: {path: qa.jsonl}
        """)
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("suite.yaml:3:17: qa.jsonl line 2: invalid JSON: Expecting value")


def test_hf_dataset_from_a_local_folder() -> None:
    datasets = pytest.importorskip("datasets")
    Path("hf_qa").mkdir()
    Path("hf_qa/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk("saved_qa")
    for ref, n in (("hf:./hf_qa@train", 2), ("hf:saved_qa@test", 2)):
        write(f"""\
            name: hf
            targets: [{{id: up, python: "{module(UPPER)}:answer"}}]
            dataset: {{path: "{ref}", fields: {{id: qid, input: question, expected: answer, contexts: passages}}}}
            metrics: [exact_match]
            """)
        result = invoke("validate", "suite.yaml")
        assert (result.exit_code, result.stdout) == (0, f"ok: suite.yaml ({n} cases, 1 targets, 1 metrics, 0 gates)\n")


def test_hf_dataset_offline_fails_with_a_clear_message() -> None:
    pytest.importorskip("datasets")
    write("""\
        name: hf
        targets: [{id: rec, outputs: x.jsonl}]
        dataset: {path: "hf:some-org/not-cached@validation"}
        """)
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "suite.yaml:3:17: could not load Hugging Face dataset 'some-org/not-cached@validation': ")
    assert result.stderr.endswith(
        "  hint: offline, use a local dataset directory or a dataset already in the HF cache\n")


# --- command-line errors ----------------------------------------------------------------------


def test_run_without_a_suite() -> None:
    result = invoke("run")
    assert (result.exit_code, result.stderr) == (
        2, "error: give at least one suite file (or --resume RUN_DIR)\n  hint: llmeval run suites/example.yaml\n")


def test_unknown_report_format() -> None:
    write(suite_with(module(UPPER)))
    result = invoke("run", "suite.yaml", "--format", "html,pdf")
    assert (result.exit_code, result.stderr) == (2, "error: unknown format(s) pdf; choose from html, md, junit\n")


def test_bad_shard() -> None:
    write(suite_with(module(UPPER)))
    assert invoke("run", "suite.yaml", "--shard", "4/3").stderr == "error: --shard 4/3: I must be between 1 and N\n"
    assert invoke("run", "suite.yaml", "--shard", "x").stderr == "error: --shard expects I/N such as 2/4, got 'x'\n"


def test_unknown_option_exits_2() -> None:
    assert invoke("run", "suite.yaml", "--frobnicate").exit_code == 2


def test_resume_of_a_directory_that_is_not_a_run() -> None:
    Path("nothing").mkdir()
    result = invoke("run", "--resume", "nothing")
    assert (result.exit_code, result.stderr) == (
        2, "error: not a run directory: nothing (no run.json)\n  hint: pass a folder under runs/\n")
