"""The pytest plugin, in a user's project with no conftest: `@llmeval.suite(...)` tests, one test
per case and target, failure messages with metric, value, threshold and judge reason, gates as
assertions; and a project that does not use it pays nothing for it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fakes import FakeOpenAI
from tests.judgehelpers import STEPS

APP = """\
def answer(case):
    return "You have 30 days." if "return" in case.input else "No idea."
"""
SUITE = """\
name: refund-bot
targets:
  - {id: app, python: "refund_app:answer"}
cases:
  - {id: window, input: How long do I have to return an item?, expected: 30 days}
  - {id: parcel, input: Where is my parcel?, expected: tracking}
metrics:
  - contains: "30 days"
gates:
  - {metric: pass_rate, min: 0.9}
"""


def project(root: Path, tests: str, suite: str = SUITE) -> Path:
    (root / "suites").mkdir(parents=True)
    (root / "suites" / "refund.yaml").write_text(suite)
    (root / "refund_app.py").write_text(APP)
    (root / "tests").mkdir()
    (root / "tests" / "test_quality.py").write_text(textwrap.dedent(tests))
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    return root


def pytest_in(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest as a user runs it in their project: this venv's pytest, entry-point plugins, no conftest."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_a_suite_is_a_test_whose_gates_are_its_assertions(tmp_path: Path) -> None:
    root = project(tmp_path, """\
        import llmeval

        @llmeval.suite("suites/refund.yaml")
        def test_refund_bot(llmeval_run):
            assert llmeval_run.summary["app"]["contains"]["n"] == 2

        @llmeval.suite("suites/refund.yaml", cases=["window"])
        def test_body_runs_after_the_suite_passed():
            raise AssertionError("the body runs once the suite passed")
        """)
    proc = pytest_in(root, "-rN")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = next(d for d in (root / "runs").iterdir() if len((d / "results.jsonl").read_text().splitlines()) == 2)
    assert (
        "llmeval: suite refund-bot: 1 of 1 gates failed "
        f"(report: {run_dir / 'report.html'})\n"
        "  FAIL pass_rate >= 0.9 on app: 0.5\n"
        "failing cases (1 of 2):\n"
        "  parcel on app: contains = 0: missing: '30 days'\n") in proc.stdout
    assert "AssertionError: the body runs once the suite passed" in proc.stdout  # window alone passes the gate
    assert "2 failed in" in proc.stdout
    assert "llmeval runs" in proc.stdout and f"{run_dir.name}: {run_dir / 'report.html'}" in proc.stdout


def test_per_case_makes_one_test_per_case_and_target_plus_the_gates(tmp_path: Path) -> None:
    root = project(tmp_path, """\
        import pytest
        import llmeval

        @llmeval.suite("suites/refund.yaml", per_case=True)
        def test_cases(llmeval_result):
            assert llmeval_result is None or llmeval_result.output  # None in the gates test

        @pytest.mark.llmeval("suites/refund.yaml", per_case=True, cases=["window"])
        def test_marker_form():
            pass
        """)
    proc = pytest_in(root, "-vv")
    lines = [x.split(" ")[0] for x in proc.stdout.splitlines() if x.startswith("tests/")]
    assert lines == ["tests/test_quality.py::test_cases[window-app]", "tests/test_quality.py::test_cases[parcel-app]",
                     "tests/test_quality.py::test_cases[gates]", "tests/test_quality.py::test_marker_form[window-app]",
                     "tests/test_quality.py::test_marker_form[gates]"], proc.stdout
    assert "case parcel on app failed:\n  contains = 0: missing: '30 days'\n  output: No idea." in proc.stdout
    assert "FAILED tests/test_quality.py::test_cases[parcel-app]" in proc.stdout
    assert "PASSED" in next(x for x in proc.stdout.splitlines() if "test_marker_form[gates]" in x)  # window passes
    assert len(list((root / "runs").iterdir())) == 2  # one run per (suite, overrides)


def test_a_failing_judge_metric_shows_value_threshold_and_reason(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.script("write the evaluation steps", STEPS)
    fake_openai.script("Evaluation Form", "2\nIt says 14 days, not 30.")
    suite = SUITE.replace('  - contains: "30 days"\n', "  - geval: {name: correctness, criteria: Same facts?, "
                          "fields: [output, expected], threshold: 0.7}\n")
    suite = suite.replace("targets:", "judge: {model: openai/fake-judge, api_base: '${FAKE_BASE}', api_key: sk-t}\n"
                          "targets:")
    root = project(tmp_path, """\
        import llmeval

        @llmeval.suite("suites/refund.yaml", per_case=True, cases=["window"])
        def test_cases():
            pass
        """, suite=suite)
    proc = pytest_in(root, env={"FAKE_BASE": fake_openai.base_url})
    assert ("case window on app failed:\n"
            "  correctness = 0.25 (threshold 0.7): 2.00 on 1-5: It says 14 days, not 30.\n"
            "  output: You have 30 days.") in proc.stdout, proc.stdout


def test_a_broken_suite_is_a_collection_error_without_a_traceback(tmp_path: Path) -> None:
    root = project(tmp_path, """\
        import llmeval

        @llmeval.suite("suites/refund.yaml", per_case=True)
        def test_cases():
            pass
        """, suite=SUITE.replace("contains:", "containz:"))
    proc = pytest_in(root)
    assert proc.returncode == 2, proc.stdout
    assert (f"@llmeval.suite('{root / 'suites' / 'refund.yaml'}'): {root / 'suites' / 'refund.yaml'}:8:5: "
            "unknown metric 'containz'\n  hint: did you mean 'contains'?") in proc.stdout
    assert "Traceback" not in proc.stdout and "llmeval/pytest_plugin.py" not in proc.stdout


def test_a_misspelt_override_fails_at_import_of_the_test_module(tmp_path: Path) -> None:
    root = project(tmp_path, """\
        import llmeval

        @llmeval.suite("suites/refund.yaml", concurency=4)
        def test_refund_bot():
            pass
        """)
    proc = pytest_in(root)
    assert proc.returncode == 2
    assert (f"@llmeval.suite('{root / 'suites' / 'refund.yaml'}'): evaluate() got an unknown option 'concurency'\n"
            "  hint: did you mean 'concurrency'?") in proc.stdout
    assert "Traceback" not in proc.stdout and "api.py" not in proc.stdout


def test_the_plugin_is_loaded_but_inert_in_a_project_that_does_not_use_it(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(textwrap.dedent("""\
        import sys

        def test_nothing_heavy_was_imported(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("llmeval")
            loaded = [m for m in ("llmeval.api", "llmeval.pipeline.runner", "pydantic", "numpy", "litellm")
                      if m in sys.modules]
            assert loaded == []
        """))
    proc = pytest_in(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "llmeval runs" not in proc.stdout
