"""`llmeval run` over datasets in every supported format: field mapping, stable ids, limits,
bad rows and Hugging Face datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.clirunhelpers import UPPER, invoke, module, only_run_dir, results, write


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # datasets writes its cache here
    return tmp_path


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
    from llmeval.load.loader import load_suite

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
           "  hint: map the input column with dataset.fields.input (or a conversation with fields.messages)\n")


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


def test_hf_prefix_reads_local_data_files_and_globs() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    Path("data").mkdir()
    pd.DataFrame(ROWS).to_parquet("data/qa.parquet")
    Path("data/more-1.jsonl").write_text(json.dumps({**ROWS[0], "qid": "q3"}) + "\n")
    Path("data/more-2.jsonl").write_text(json.dumps({**ROWS[1], "qid": "q4"}) + "\n")
    mod = module(UPPER)
    for ref in ("hf:data/qa.parquet", "hf:data/qa.parquet@train", "hf:data/more-*.jsonl"):
        write(f"""\
            name: hf
            targets: [{{id: up, python: "{mod}:answer"}}]
            dataset: {{path: "{ref}", fields: {{id: qid, input: question, expected: answer, contexts: passages}}}}
            metrics: [exact_match]
            """)
        result = invoke("run", "suite.yaml", "-q", "--format", "")
        assert result.exit_code == 0, (ref, result.output)
    runs = sorted(Path("runs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert [r["case_id"] for r in results(runs[0])] == ["q1", "q2"]
    assert results(runs[0])[0]["contexts"] == ["p1", "p2"]
    assert [r["case_id"] for r in results(runs[2])] == ["q3", "q4"]
    Path("x.jsonl").write_text("")
    write("""\
        name: hf
        targets: [{id: rec, outputs: x.jsonl}]
        dataset: {path: "hf:data/qa.parquet@test"}
        """)
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert result.stderr == ("suite.yaml:3:17: hf:data/qa.parquet@test: a local data file has one split, "
                             "'train' (not 'test')\n  hint: write hf:data/qa.parquet or path: data/qa.parquet\n")


def test_hf_dataset_offline_fails_with_a_clear_message() -> None:
    pytest.importorskip("datasets")
    Path("x.jsonl").write_text("")
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
