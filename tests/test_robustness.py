"""Bad input and unexpected failures end as a clear message and an exit code, never a traceback;
a run that measured nothing does not pass; runs are checked before anything is called."""

from __future__ import annotations

import importlib
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.load.cases import shard_of
from tests.fakes import FakeOpenAI, Reply

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(text: str, name: str = "suite.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def module(source: str) -> str:
    name = f"robust_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()
    return name


def run(*args: str) -> Any:
    return invoke("run", *args, "-o", "runs", "-q", "--format", "")


def run_dirs() -> list[Path]:
    return sorted(Path("runs").iterdir()) if Path("runs").exists() else []


def rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {r["case_id"]: r for r in map(json.loads, lines)}


def manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


# 1. unexpected exceptions


def test_a_template_type_error_is_a_config_error_in_validate() -> None:
    write("""\
        name: t
        targets:
          - id: bot
            model: openai/fake-model
            prompt: "{{ input + 1 }}"
        cases:
          - {id: a, input: hi}
        """)
    result = invoke("validate", "suite.yaml")
    assert (result.exit_code, result.stderr) == (
        2, "suite.yaml:5:13: template error: TypeError: can only concatenate str (not \"int\") to str "
           "(rendering case 'a')\n")


def test_an_unexpected_exception_in_a_target_is_recorded_and_the_run_goes_on() -> None:
    mod = module("""\
        def answer(case):
            if case.id == "bad":
                return {"output": "x", "usage": {"prompt": "many"}}
            return case.input
        """)
    write(f"""\
        name: t
        targets: [{{id: bot, python: '{mod}:answer'}}]
        cases: [{{id: bad, input: one, expected: one}}, {{id: good, input: two, expected: two}}]
        metrics: [exact_match]
        """)
    result = run("suite.yaml")
    assert result.exit_code == 0, result.output
    [run_dir] = run_dirs()
    got = rows(run_dir)
    assert got["bad"]["error"] == {
        "type": "bad_response",
        "message": "the callable returned a usage without integer token counts "
                   "(invalid literal for int() with base 10: 'many')"}
    assert got["good"]["error"] is None and got["good"]["passed"] is True
    assert manifest(run_dir)["summary"]["bot"]["errors"] == 1


def test_a_custom_metric_that_raises_on_one_case_scores_null_for_that_case() -> None:
    Path("metrics").mkdir()
    Path("metrics/picky.py").write_text(textwrap.dedent("""\
        from llmeval import register_metric


        @register_metric('picky')
        def picky(result):
            \"\"\"Fails loudly on one case.\"\"\"
            if result.output == "boom":
                raise KeyError("no such thing")
            return 1.0
        """))
    write("""\
        name: t
        targets: [{id: rec, outputs: out.jsonl}]
        cases: [{id: a, input: q1}, {id: b, input: q2}]
        metrics: [picky]
        """)
    Path("out.jsonl").write_text('{"id": "a", "output": "boom"}\n{"id": "b", "output": "fine"}\n')
    result = run("suite.yaml")
    assert result.exit_code == 0, result.output
    got = rows(run_dir := run_dirs()[0])
    assert got["a"]["scores"]["picky"] == {"value": None, "passed": None, "error": "metric",
                                          "reason": "metric error: KeyError: 'no such thing'", "details": {}}
    assert got["b"]["scores"]["picky"]["value"] == 1.0
    summary = manifest(run_dir)["summary"]["rec"]
    assert (summary["picky"]["n_null"], summary["picky"]["n_errors"], summary["metric_errors"]) == (1, 1, 1)
    assert (got["a"]["passed"], got["b"]["passed"]) == (False, True)


# 2. recorded outputs that are not strings


def test_recorded_outputs_that_are_numbers_or_objects_are_scored_as_text() -> None:
    write("""\
        name: t
        targets: [{id: rec, outputs: out.jsonl}]
        cases:
          - {id: n, input: q1, expected: "42"}
          - {id: o, input: q2, expected: '{"a": 1}'}
        metrics: [exact_match]
        """)
    Path("out.jsonl").write_text('{"id": "n", "output": 42}\n{"id": "o", "output": {"a": 1}}\n')
    result = run("suite.yaml")
    assert result.exit_code == 0, result.output
    got = rows(run_dirs()[0])
    assert (got["n"]["output"], got["n"]["scores"]["exact_match"]["value"]) == ("42", 1.0)
    assert (got["o"]["output"], got["o"]["scores"]["exact_match"]["value"]) == ('{"a": 1}', 1.0)


# 3. nothing measured is not a pass


def test_a_case_whose_thresholded_scores_are_all_null_does_not_pass() -> None:
    Path("metrics").mkdir()
    Path("metrics/never.py").write_text(textwrap.dedent("""\
        from llmeval import register_metric


        @register_metric('never')
        def never(result):
            \"\"\"Cannot be computed.\"\"\"
            return "n/a"
        """))
    write("""\
        name: t
        targets: [{id: rec, outputs: out.jsonl}]
        cases: [{id: a, input: q1, expected: x}]
        metrics: [{never: {threshold: 0.5}}]
        """)
    Path("out.jsonl").write_text('{"id": "a", "output": "x"}\n')
    result = run("suite.yaml")
    got = rows(run_dir := run_dirs()[0])["a"]
    assert (got["scores"]["never"]["value"], got["scores"]["never"]["error"], got["passed"]) == (None, "metric", False)
    # a value that is not a score is a metric error; with none on any case the run fails
    why = "metric error: custom metric never returned 'n/a', not a number in [0, 1], a bool or a Score"
    assert got["scores"]["never"]["reason"] == why
    assert (result.exit_code, result.stderr) == (
        3, f"error: metric never has no value on any case of target rec (first error: {why}); run saved in {run_dir}\n")


def test_a_judge_that_fails_on_every_case_fails_the_run(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(None, Reply(status=400, error_message="model not found"))
    write(f"""\
        name: t
        targets: [{{id: rec, outputs: out.jsonl}}]
        judge: {{model: openai/fake-judge, api_base: '{fake_openai.base_url}', api_key: sk-test}}
        cases: [{{id: a, input: q1}}, {{id: b, input: q2}}]
        metrics: [{{geval: {{name: quality, criteria: Good?, steps: [Rate it.], threshold: 0.5}}}}]
        """)
    Path("out.jsonl").write_text('{"id": "a", "output": "x"}\n{"id": "b", "output": "y"}\n')
    result = run("suite.yaml")
    [run_dir] = run_dirs()
    got = rows(run_dir)
    reason = got["a"]["scores"]["quality"]["reason"]
    assert reason.startswith("judge error")
    assert result.exit_code == 3
    assert result.stderr == (f"error: metric quality has no value on any case of target rec "
                             f"(first error: {reason}); run saved in {run_dir}\n")
    assert manifest(run_dir)["status"] == "failed"
    assert [got["a"]["passed"], got["b"]["passed"]] == [False, False]


# 4. every suite is checked before any is run


def test_a_bad_selection_in_a_later_suite_stops_before_the_first_runs() -> None:
    mod = module("def answer(case):\n    return case.input\n")
    write(f"name: one\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{{input: hi, tags: [smoke]}}]\n",
          "one.yaml")
    write(f"name: two\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{{input: hi}}]\n", "two.yaml")
    result = run("one.yaml", "two.yaml", "--tag", "smoke")
    assert (result.exit_code, result.stderr) == (2, "error: no cases selected (tags: smoke)\n")
    assert run_dirs() == []


# 5. --resume refuses an edited suite


def test_resume_refuses_a_suite_that_changed_since_the_run() -> None:
    mod = module("def answer(case):\n    return case.input\n")
    write(f"name: t\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{{id: a, input: hi}}]\n")
    assert run("suite.yaml").exit_code == 0
    [run_dir] = run_dirs()
    before = (run_dir / "results.jsonl").read_bytes()
    with open("suite.yaml", "a") as f:
        f.write("description: edited\n")
    result = invoke("run", "suite.yaml", "--resume", str(run_dir), "-q", "--format", "")
    assert (result.exit_code, result.stderr) == (
        2, "error: suite.yaml changed since the run started; resuming would mix results of two versions of "
           f"the suite\n  hint: restore the file, or start a new run without --resume {run_dir}\n")
    assert (run_dir / "results.jsonl").read_bytes() == before


# 6. bad data files


def test_a_suite_that_is_not_utf8_is_a_config_error() -> None:
    Path("suite.yaml").write_bytes(b"name: t\ntargets:\n  - {id: bot, model: openai/m}\ncases:\n  - input: caf\xe9\n")
    result = invoke("validate", "suite.yaml")
    assert (result.exit_code, result.stderr) == (
        2, "suite.yaml:5:15: not UTF-8 text (byte 0xe9 at offset 69)\n"
           "  hint: save the file as UTF-8\n")


DATASET_SUITE = "name: t\ntargets:\n  - {{id: bot, model: openai/m}}\ndataset: {{path: {path}}}\n"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("data.json", '[{"input": "a"},', "data.json: invalid JSON at line 1 column 17: Expecting value"),
    ("data.json", '[{"input": "a"}, 3]', "data.json: item 2 is a int, expected a JSON object"),
    ("data.jsonl", '{"input": "a"}\n["b"]\n', "data.jsonl line 2: expected a JSON object, got list"),
    ("data.jsonl", '{"input": "a", "vars": "x"}\n',
     "data.jsonl: dataset row 1: 'vars' must be a mapping of template variables, got str"),
    ("data.csv", 'input,expected\n"a,b\n', "cannot read data.csv: ParserError: Error tokenizing data. "
                                          "C error: EOF inside string starting at row 1"),
    ("data.parquet", "not parquet", "cannot read data.parquet: ArrowInvalid: "),
])
def test_bad_dataset_files_are_config_errors(name: str, content: str, message: str) -> None:
    if name.endswith((".csv", ".parquet")):
        pytest.importorskip("pandas")
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    Path(name).write_text(content, encoding="utf-8")
    write(DATASET_SUITE.format(path=name))
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"suite.yaml:4:17: {message}"), result.stderr


def test_a_dataset_that_is_not_utf8_is_a_config_error() -> None:
    Path("data.jsonl").write_bytes(b'{"input": "caf\xe9"}\n')
    write(DATASET_SUITE.format(path="data.jsonl"))
    result = invoke("validate", "suite.yaml")
    assert (result.exit_code, result.stderr) == (
        2, "data.jsonl:1:15: not UTF-8 text (byte 0xe9 at offset 14)\n  hint: save the file as UTF-8\n")


# 7. readers leave a torn line alone


def test_reading_a_run_skips_a_torn_line_without_truncating_the_file() -> None:
    mod = module("def answer(case):\n    return case.input\n")
    write(f"name: t\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{{id: a, input: hi}}]\n")
    assert run("suite.yaml").exit_code == 0
    [run_dir] = run_dirs()
    path = run_dir / "results.jsonl"
    with path.open("ab") as f:
        f.write(b'{"case_id": "b", "tar')
    torn = path.read_bytes()
    result = invoke("report", str(run_dir), "--format", "md")
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == torn


# 8. sync python targets get as many threads as their concurrency


def test_a_sync_python_target_runs_as_many_calls_at_once_as_its_concurrency() -> None:
    # 40 calls wait for each other at a barrier: with fewer than 40 threads it times out.
    mod = module("""\
        import threading

        BARRIER = threading.Barrier(40, timeout=20)

        def answer(case):
            BARRIER.wait()
            return case.input
        """)
    cases = ", ".join(f"{{id: c{i}, input: q{i}}}" for i in range(40))
    write(f"name: t\ntargets: [{{id: bot, python: '{mod}:answer', concurrency: 40}}]\ncases: [{cases}]\n")
    result = run("suite.yaml")
    assert result.exit_code == 0, result.output
    assert [r["error"] for r in rows(run_dirs()[0]).values()] == [None] * 40


# 9. an empty shard is an empty complete run


def test_an_empty_shard_writes_an_empty_run_that_merges() -> None:
    mod = module("def answer(case):\n    return case.expected\n")
    ids = ["a", "b"]
    empty = next(i for i in range(3) if all(shard_of(c, 3) != i for c in ids)) + 1
    cases = ", ".join(f"{{id: {c}, input: q, expected: x}}" for c in ids)
    write(f"name: t\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{cases}]\n"
          "metrics: [exact_match]\ngates: [{metric: exact_match, min: 1.0}]\n")
    for i in range(1, 4):
        result = run("suite.yaml", "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
    by_shard = {manifest(d)["options"]["shard"][0]: d for d in run_dirs()}
    assert (by_shard[empty] / "results.jsonl").read_text() == ""
    m = manifest(by_shard[empty])
    assert (m["status"], m["summary"]["bot"]["n"]) == ("complete", 0)
    merged = invoke("merge", *map(str, by_shard.values()), "-o", "merged", "-q", "--format", "")
    assert merged.exit_code == 0, merged.output
    [out] = list(Path("merged").iterdir())
    assert manifest(out)["summary"]["bot"]["n"] == 2
    assert manifest(out)["summary"]["bot"]["exact_match"]["mean"] == 1.0


def test_a_tag_that_matches_nothing_is_still_an_error_with_a_shard() -> None:
    mod = module("def answer(case):\n    return case.input\n")
    write(f"name: t\ntargets: [{{id: bot, python: '{mod}:answer'}}]\ncases: [{{id: a, input: hi}}]\n")
    result = run("suite.yaml", "--shard", "1/2", "--tag", "nope")
    assert (result.exit_code, result.stderr) == (2, "error: no cases selected (tags: nope)\n")


def test_a_batched_metric_that_raises_scores_null_and_keeps_the_run(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "boom.py").write_text(
        "from llmeval import register_metric\n"
        "from llmeval.metrics.base import Metric\n\n"
        "@register_metric('boom')\n"
        "class Boom(Metric):\n"
        "    async def score_all(self, samples, ctx):\n"
        "        raise RuntimeError('kaput')\n"
    )
    (tmp_path / "out.jsonl").write_text('{"id": "a", "output": "x"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text("name: b\ntargets:\n  - {id: r, outputs: out.jsonl}\ncases:\n  - {id: a, input: hi}\n"
                     "metrics:\n  - boom\n  - contains: {value: x}\n")
    res = CliRunner().invoke(app, ["run", str(suite), "-o", str(tmp_path / "runs"), "-q", "--format", ""])
    run_dir = next((tmp_path / "runs").iterdir())
    line = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    assert line["scores"]["boom"] == {"value": None, "passed": None, "error": "metric",
                                      "reason": "metric error: RuntimeError: kaput", "details": {}}
    assert line["scores"]["contains"]["value"] == 1.0
    # the outputs and the other metric are kept; a metric that measured nothing fails the run
    assert res.exit_code == 3, res.output
