"""A folder written by save_to_disk() works as a plain dataset `path:` (a Dataset, or a DatasetDict
`@split`), and a DatasetDict given without a split it can decide names the splits it has."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clirunhelpers import invoke, write

datasets = pytest.importorskip("datasets")
ROWS = [{"qid": f"q{i}", "question": f"question {i}", "answer": f"answer {i}"} for i in range(3)]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("none.jsonl").write_text("")  # the recorded outputs the suite names (checked at load)
    Path("data").mkdir()
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk("data/one")
    datasets.DatasetDict({"test": ds}).save_to_disk("data/only_test")
    datasets.DatasetDict({"test": ds.select([0]), "validation": ds}).save_to_disk("data/two")
    return tmp_path


def validate(path: str) -> tuple[int, str, str]:
    write(f"""\
name: saved
targets: [{{id: rec, outputs: none.jsonl}}]
dataset: {{path: "{path}", fields: {{id: qid, input: question, expected: answer}}}}
""")
    result = invoke("validate", "suite.yaml")
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("path", "n"), [
    ("data/one", 3), ("data/only_test", 3), ("data/two@test", 1), ("data/two@validation", 3),
    ("hf:data/two@test", 1), ("hf:data/only_test", 3),
])
def test_a_save_to_disk_folder_is_a_dataset_path(path: str, n: int) -> None:
    assert validate(path) == (0, f"ok: suite.yaml ({n} cases, 1 targets, 0 metrics, 0 gates)\n", "")


def test_a_dataset_dict_without_a_split_names_its_splits() -> None:
    assert validate("data/two") == (2, "", (
        "suite.yaml:3:17: data/two is a DatasetDict: name one of its splits; its splits: test, validation\n"
        "  hint: e.g. data/two@test\n"))
    assert validate("hf:data/two") == (2, "", (
        "suite.yaml:3:17: hf:data/two is a DatasetDict: name one of its splits; its splits: test, validation\n"
        "  hint: e.g. hf:data/two@test\n"))


def test_an_unknown_split_names_the_splits_there_are() -> None:
    assert validate("data/two@train") == (2, "", (
        "suite.yaml:3:17: data/two@train has no split 'train'; its splits: test, validation\n"
        "  hint: e.g. data/two@test\n"))


def test_a_folder_that_is_not_a_saved_dataset_is_said_to_be_one() -> None:
    Path("data/plain").mkdir()
    assert validate("data/plain") == (2, "", (
        "suite.yaml:3:17: data/plain is a folder, not a dataset\n"
        "  hint: give a .jsonl .json .csv or .parquet file, or a folder written by "
        "Dataset/DatasetDict.save_to_disk()\n"))
