"""Rubric files, prompt overrides and custom Python metrics from a project's metrics/ folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.fakes import FakeOpenAI
from tests.fakes.openai_server import last_user_text
from tests.judgehelpers import ONE_CASE, REPO, STEPS, in_prompt, run_suite, write_suite


def project(tmp_path: Path) -> Path:
    """A project folder: suites/ beside a metrics/ folder holding the shipped example rubrics."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "metrics").mkdir()
    for name in ("helpfulness.yaml", "politeness.yaml"):
        shutil.copy(REPO / "metrics" / name, tmp_path / "metrics" / name)
    return tmp_path / "suites"


def test_rubric_files_define_judge_metrics(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    steps = fake_openai.script("write the evaluation steps", STEPS)
    fake_openai.script(in_prompt("Customer message:"), "2\nCurt.")
    fake_openai.script(in_prompt("Evaluation Form"), "5")
    suite = write_suite(project(tmp_path), fake_openai, [{"id": "a", "output": "Read the policy."}], ONE_CASE,
                        "  - judge: metrics/politeness.yaml\n"
                        "  - judge: {path: metrics/helpfulness.yaml, threshold: 0.9}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    polite = run.score("a", "politeness")
    assert polite["value"] == 0.25 and polite["passed"] is False  # the rubric's threshold: 0.75
    assert polite["reason"] == "2.00 on 1-5: Curt."
    assert run.score("a", "helpfulness")["value"] == 1.0 and run.score("a", "helpfulness")["passed"] is True
    assert steps.calls == 1  # politeness lists its steps; helpfulness has them generated
    text = next(last_user_text(b) for b in fake_openai.requests if "Customer message:" in last_user_text(b))
    assert "1. Read the user's message and note anything that calls for tact" in text
    assert "Reply:\n\nRead the policy." in text
    config = next(m for m in run.manifest["metrics"] if m["name"] == "politeness")
    assert config["kind"] == "judge" and config["path"] == "metrics/politeness.yaml" and len(config["sha256"]) == 64
    assert run.manifest["metric_notes"]["politeness"]["steps_generated"] is False


def test_rubric_errors_point_into_the_rubric_file(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "bad.yaml").write_text("name: bad\ncritera: Polite?\n")
    suite = write_suite(suites, fake_openai, [{"id": "a", "output": "x"}], ONE_CASE, "  - judge: metrics/bad.yaml")
    run = run_suite(suite)
    assert run.code == 2
    assert f"{tmp_path / 'metrics' / 'bad.yaml'}:2:1: unknown key 'critera'" in run.output
    assert "did you mean 'criteria'?" in run.output
    suite.write_text(suite.read_text().replace("metrics/bad.yaml", "metrics/missing.yaml"))
    run = run_suite(suite)
    assert run.code == 2 and "rubric file not found: metrics/missing.yaml" in run.output


def test_a_prompt_file_in_metrics_overrides_the_default(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "claims.j2").write_text('OUR CLAIMS PROMPT: {{ output }}\nJSON: {"claims": [...]}')
    fake_openai.script("OUR CLAIMS PROMPT", '{"claims": []}')
    suite = write_suite(suites, fake_openai, [{"id": "a", "output": "Hello!"}],
                        "  - {id: a, input: hi, contexts: [c]}", "  - groundedness")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert last_user_text(fake_openai.requests[0]) == 'OUR CLAIMS PROMPT: Hello!\nJSON: {"claims": [...]}'
    assert run.score("a", "groundedness")["details"]["not_applicable"] is True


def test_custom_python_metrics_load_only_when_named(tmp_path: Path) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "brevity.py").write_text(
        "from llmeval import register_metric\n\n\n@register_metric('short_answer')\n"
        "def short_answer(result, max_words=5):\n    \"\"\"At most max_words words.\"\"\"\n"
        "    return len(result.output.split()) <= max_words\n")
    (tmp_path / "metrics" / "unrelated.py").write_text("raise RuntimeError('imported although no suite names it')\n")
    cases = "  - {id: a, input: q}\n  - {id: b, input: q2}"
    outputs = [{"id": "a", "output": "Thirty days."}, {"id": "b", "output": "It is thirty days from delivery."}]
    suite = write_suite(suites, None, outputs, cases, "  - short_answer: {max_words: 3}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert run.score("a", "short_answer")["value"] == 1.0
    assert run.score("b", "short_answer") == {"value": 0.0, "passed": False, "reason": None, "details": {}}
    (tmp_path / "metrics" / "broken.py").write_text("from llmeval import register_metric\n"
                                                      "register_metric('broken_metric')\nraise ValueError('oops')\n")
    suite.write_text(suite.read_text().replace("short_answer: {max_words: 3}", "broken_metric"))
    run = run_suite(suite)
    assert run.code == 2
    broken = tmp_path / "metrics" / "broken.py"
    assert f"{broken}:3:1: error importing custom metric file: ValueError: oops" in run.output
