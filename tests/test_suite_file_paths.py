"""Where the files a suite names are looked for, as README's "Files a suite names" says: datasets and
recorded outputs relative to the suite's folder (not the cwd), rubrics in the suite's folder, its
parent or the cwd, absolute and `..` paths as they are (llmeval does not confine a suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = "name: polite\ncriteria: Is it polite?\nsteps: [Rate it.]\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "proj/suites/data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    return tmp_path


def validate(suite: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", suite])
    return result.exit_code, result.stderr


def test_the_readme_says_what_the_loader_does() -> None:
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert ("datasets, recorded `outputs:`, `file://` prompt files and image parts relative to the suite's folder; "
            "rubrics (`judge: metrics/x.yaml`) and the `metrics/` folder (prompt overrides, Python metrics) in the "
            "suite's folder, then its parent, then the working directory.") in text
    assert "and `..` is allowed: llmeval does not confine a suite to its project folder" in text


def test_datasets_and_outputs_are_relative_to_the_suite_and_may_lie_outside_the_project(project: Path) -> None:
    (project / "outside/d.jsonl").write_text('{"id": "a", "input": "hi", "expected": "hi"}\n')
    (project / "proj/suites/data/o.jsonl").write_text('{"id": "a", "output": "hi"}\n')
    Path("suites/s.yaml").write_text(f"name: t\ntargets:\n  - {{id: bot, outputs: data/o.jsonl}}\n"
                                     f"dataset: {{path: {project / 'outside/d.jsonl'}}}\nmetrics: [exact_match]\n")
    assert validate("suites/s.yaml") == (0, "")
    Path("suites/s.yaml").write_text("name: t\ntargets:\n  - {id: bot, outputs: data/o.jsonl}\n"
                                     "dataset: {path: ../../outside/d.jsonl}\nmetrics: [exact_match]\n")
    assert validate("suites/s.yaml") == (0, "")
    Path("data").mkdir()
    Path("data/d.jsonl").write_text('{"id": "a", "input": "hi", "expected": "hi"}\n')  # in the cwd: not looked at
    Path("suites/s.yaml").write_text("name: t\ntargets:\n  - {id: bot, outputs: data/o.jsonl}\n"
                                     "dataset: {path: data/d.jsonl}\nmetrics: [exact_match]\n")
    assert validate("suites/s.yaml") == (
        2, f"suites/s.yaml:4:17: dataset file not found: data/d.jsonl (looked in {project / 'proj/suites/data'})\n")


def test_a_rubric_is_found_in_the_suites_parent_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "proj/metrics").mkdir()
    (project / "proj/metrics/polite.yaml").write_text(RUBRIC)
    (project / "proj/suites/data/o.jsonl").write_text('{"id": "a", "output": "hi"}\n')
    Path("suites/s.yaml").write_text("name: t\ntargets:\n  - {id: bot, outputs: data/o.jsonl}\n"
                                     "judge: {model: openai/j}\ncases:\n  - {id: a, input: hi}\n"
                                     "metrics:\n  - judge: metrics/polite.yaml\n")
    monkeypatch.chdir(project / "outside")  # neither the suite's folder nor its parent
    assert validate(str(project / "proj/suites/s.yaml")) == (0, "")
    (project / "proj/metrics/polite.yaml").unlink()
    code, err = validate(str(project / "proj/suites/s.yaml"))
    assert code == 2 and err.startswith(f"{project / 'proj/suites/s.yaml'}:8:5: rubric file not found: "
                                        "metrics/polite.yaml"), err
