"""Data out and rescoring: `llmeval export` (csv, parquet, jsonl), `llmeval.load_run` to a DataFrame,
and `llmeval rescore` (new run from stored outputs; targets never called, judge answers cached)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import llmeval
from llmeval.cli.main import app
from tests.fakes import FakeOpenAI
from tests.runfactory import result, write_run

runner = CliRunner()
pd = pytest.importorskip("pandas")


def small_run(tmp_path: Path) -> Path:
    results = [
        result("a", "t1", {"acc": 0.9, "flu": 0.5}, {"acc": 0.5}, input={"question": "q?", "lang": "en"},
               expected=["ref one", "ref two"], contexts=["ctx"], tags=["x"]),
        result("b", "t1", {"acc": 0.2, "flu": None}, {"acc": 0.5}, output="plain, with a comma"),
        result("a", "t2", {}, error=("TimeoutError", "no answer")),
    ]
    return write_run(tmp_path, "r1", results, ["acc", "flu"], {"acc": 0.5})


def test_load_run_gives_a_dataframe_with_one_column_per_metric(tmp_path: Path) -> None:
    df = llmeval.load_run(small_run(tmp_path)).to_dataframe()
    assert len(df) == 3
    assert {"case_id", "target", "output", "passed", "acc", "flu", "error"} <= set(df.columns)
    row = df[(df.case_id == "b") & (df.target == "t1")].iloc[0]
    assert row.acc == 0.2 and pd.isna(row.flu) and not row.passed


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_writes_one_row_per_result_and_one_column_per_metric(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    run_dir = small_run(tmp_path)
    res = runner.invoke(app, ["export", str(run_dir), "--format", fmt, "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    path = tmp_path / "out" / f"export.{fmt}"
    assert res.output.strip() == str(path)
    df = {"csv": pd.read_csv, "parquet": pd.read_parquet,
          "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt](path)
    assert len(df) == 3
    assert list(df.columns[-2:]) == ["acc", "flu"]  # metric columns last, in suite order
    assert sorted(df["acc"].dropna().tolist()) == [0.2, 0.9]
    first = df[(df.case_id == "a") & (df.target == "t1")].iloc[0]
    expected = first["expected"]
    assert (json.loads(expected) if fmt == "csv" else list(expected)) == ["ref one", "ref two"]
    errored = df[df.target == "t2"].iloc[0]
    assert errored["error"] == "no answer" and errored["error_type"] == "TimeoutError" and pd.isna(errored["acc"])


def test_parquet_and_the_dataframe_keep_lists_as_list_columns(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    run_dir = small_run(tmp_path)
    df = llmeval.load_run(run_dir).to_dataframe()
    first = df[(df.case_id == "a") & (df.target == "t1")].iloc[0]
    assert (first["expected"], first["contexts"], first["tags"]) == (["ref one", "ref two"], ["ctx"], ["x"])
    res = runner.invoke(app, ["export", str(run_dir), "--format", "parquet"])
    assert res.exit_code == 0, res.output
    table = pq.read_table(run_dir / "export.parquet")
    def kind(name: str) -> str:
        t = table.schema.field(name).type
        return f"list of {kind_of(t.value_type)}" if str(t).startswith("list") else kind_of(t)

    def kind_of(t: object) -> str:
        return "text" if str(t) in ("string", "large_string") else str(t)

    assert {n: kind(n) for n in ("expected", "contexts", "tags", "input")} == {
        "expected": "list of text", "contexts": "list of text", "tags": "list of text", "input": "text"}
    rows = {(r["case_id"], r["target"]): r for r in table.to_pylist()}
    assert rows[("a", "t1")]["expected"] == ["ref one", "ref two"] and rows[("a", "t1")]["tags"] == ["x"]
    assert rows[("b", "t1")]["expected"] == ["answer b"]  # one reference: a list of one, same column type
    assert json.loads(rows[("a", "t1")]["input"]) == {"question": "q?", "lang": "en"}  # an object: JSON text


def test_export_rejects_an_unknown_format(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", str(small_run(tmp_path)), "--format", "xlsx"])
    assert res.exit_code == 2 and "unknown format(s) xlsx" in res.output


COUNTER = textwrap.dedent("""
    from pathlib import Path

    def answer(case):
        log = Path(__file__).with_name("calls.log")
        log.write_text(log.read_text() + case.id + "\\n" if log.exists() else case.id + "\\n")
        return "You have 30 days." if case.id != "c2" else "No idea."
""")


def _suite(tmp_path: Path, fake: FakeOpenAI, threshold: float) -> Path:
    (tmp_path / "counting_target.py").write_text(COUNTER)
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(f"""
        name: rescored
        targets: [{{id: bot, python: counting_target:answer}}]
        judge: {{model: openai/fake-judge, api_base: '{fake.base_url}', api_key: sk-test}}
        cases:
          - {{id: c1, input: How long to return?, expected: 30 days}}
          - {{id: c2, input: Can I return a gift?, expected: Yes}}
        metrics:
          - contains: {{value: "30 days"}}
          - geval: {{name: correctness, criteria: Same facts as expected?, threshold: {threshold}}}
        gates:
          - {{metric: pass_rate, min: 0.4}}
    """))
    return suite


def test_rescore_writes_a_new_run_without_calling_the_target_and_reuses_cached_judge_answers(
        tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_openai.script("write the evaluation steps", '{"steps": ["Compare facts.", "Rate."]}')
    fake_openai.script("Evaluation Form", "4")
    suite = _suite(tmp_path, fake_openai, threshold=0.5)
    res = runner.invoke(app, ["run", str(suite), "-o", "runs", "-q", "--format", ""])
    assert res.exit_code == 0, res.output  # c1 passes, c2 fails `contains`: pass rate 0.5
    first = next((tmp_path / "runs").iterdir())
    target_calls = (tmp_path / "calls.log").read_text()
    judge_calls = fake_openai.calls
    assert judge_calls == 3  # steps once, one form per case

    _suite(tmp_path, fake_openai, threshold=0.9)  # a stricter rubric threshold: 4/5 -> 0.75 now fails
    res = runner.invoke(app, ["rescore", str(first), "--json"])
    assert res.exit_code == 1, res.output  # now no case passes: the pass_rate gate fails
    doc = json.loads(res.output)
    new = Path(doc["run_dir"])
    assert new.parent == first.parent and new != first
    assert (tmp_path / "calls.log").read_text() == target_calls  # the target was not called
    assert fake_openai.calls == judge_calls  # every judge answer came from the cache
    manifest = json.loads((new / "run.json").read_text())
    assert manifest["rescored_from"]["run_id"] == first.name and manifest["run_id"] == new.name
    assert manifest["summary"]["bot"]["correctness"]["mean"] == 0.75
    assert manifest["summary"]["bot"]["correctness"]["pass_rate"] == 0.0
    old = [json.loads(x) for x in (first / "results.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (new / "results.jsonl").read_text().splitlines()]
    assert [r["output"] for r in again] == [r["output"] for r in old]
    assert [r["scores"]["correctness"]["passed"] for r in old] == [True, True]
    assert [r["scores"]["correctness"]["passed"] for r in again] == [False, False]
    assert {p.name for p in new.iterdir()} >= {"run.json", "results.jsonl", "report.html", "summary.md", "junit.xml"}


def test_rescore_needs_the_suite_file(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)  # its run.json names suites/synthetic.yaml, which is not there
    res = runner.invoke(app, ["rescore", str(run_dir)])
    assert res.exit_code == 2
    assert "suite file not found: suites/synthetic.yaml" in res.output and "--suite" in res.output
