"""Ctrl-C, SIGTERM and SIGKILL in the middle of a run, then `--resume`: nothing lost, nothing repeated.

Real subprocesses against the fake OpenAI server, with the cache off so that only --resume can
explain a call not being repeated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 20

CASES = "\n".join(f"  - {{id: c{i:02d}, input: question {i:02d}, expected: 'ECHO: question {i:02d}'}}"
                  for i in range(N_CASES))
SUITE = f"""\
name: resumable
defaults: {{concurrency: 2, retries: 0}}
targets:
  - id: bot
    model: openai/fake-model
    api_base: ${{FAKE_BASE}}
    api_key: sk-test
cases:
{CASES}
metrics: [exact_match]
gates: [{{metric: exact_match, min: 1.0}}]
"""


@pytest.fixture
def slow_fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.latency_ms = 200
    return fake_openai


def start(args: list[str], cwd: Path, fake: FakeOpenAI) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_BASE": fake.base_url}
    return subprocess.Popen([sys.executable, "-m", "llmeval", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    """Wait until `path` has at least `n` complete lines (the run is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {n} results in {path} after {timeout} s")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def questions(requests: list[dict[str, Any]]) -> list[str]:
    return [r["messages"][-1]["content"] for r in requests]


def run_dir_of(out: Path) -> Path:
    [run_dir] = list(out.iterdir())
    return run_dir


def interrupt_and_resume(tmp_path: Path, fake: FakeOpenAI, sig: signal.Signals) -> tuple[Path, list[dict], str]:
    """Start a run, stop it with `sig` (SIGINT or SIGTERM) after a few results, resume it; returns the run dir,
    the results finished before the stop, and the stderr of the stopped run."""
    (tmp_path / "suite.yaml").write_text(SUITE)
    out = tmp_path / "runs"
    proc = start(["run", "suite.yaml", "-o", str(out), "--no-cache", "--format", ""], tmp_path, fake)
    wait_for_lines_in(out, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    run_dir = run_dir_of(out)
    assert proc.returncode == 130, stderr
    before = [r for r in lines_complete(run_dir / "results.jsonl")]
    assert 3 <= len(before) < N_CASES
    stopped = json.loads((run_dir / "run.json").read_text())
    assert stopped["status"] == "partial" and stopped["finished_at"] is not None
    assert stopped["summary"]["bot"]["n"] == len(before)
    calls_before = fake.calls
    requests_before = len(fake.requests)

    resume = start(["run", "--resume", str(run_dir), "--no-cache", "-q", "--format", ""], tmp_path, fake)
    _, resume_err = resume.communicate(timeout=120)
    assert resume.returncode == 0, resume_err

    finished_before = {r["case_id"] for r in before if r["error"] is None}
    resumed = questions(fake.requests[requests_before:])
    # Exactly the cases that had not finished were called again, each once.
    assert fake.calls - calls_before == N_CASES - len(finished_before)
    assert sorted(resumed) == sorted(f"question {i:02d}" for i in range(N_CASES)
                                     if f"c{i:02d}" not in finished_before)
    # Every call the stopped run made either finished (and was kept) or was cut off in flight.
    cut_off = calls_before - len(finished_before)
    assert 0 <= cut_off <= 2  # -j 2: at most two calls were in flight
    assert fake.calls == N_CASES + cut_off
    return run_dir, before, stderr


def wait_for_lines_in(out: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while not (out.exists() and any(out.iterdir())):
        assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
        time.sleep(0.02)
    wait_for_lines(run_dir_of(out) / "results.jsonl", 3, proc)


def lines_complete(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def assert_complete(run_dir: Path) -> None:
    rows = lines(run_dir / "results.jsonl")
    keys = Counter((r["case_id"], r["target"], r["epoch"]) for r in rows)
    assert keys == Counter({(f"c{i:02d}", "bot", 0): 1 for i in range(N_CASES)})
    assert all(r["output"] == f"ECHO: question {r['case_id'][1:]}" and r["passed"] for r in rows)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["bot"]["n"] == N_CASES
    assert manifest["summary"]["bot"]["exact_match"]["mean"] == 1.0
    assert [g["passed"] for g in manifest["gates"]] == [True]


def test_sigint_stops_cleanly_and_resume_finishes_without_repeating(tmp_path: Path, slow_fake: FakeOpenAI) -> None:
    run_dir, before, stderr = interrupt_and_resume(tmp_path, slow_fake, signal.SIGINT)
    assert stderr.startswith(f"interrupted: {len(before)} of {N_CASES} results are in {run_dir}\n")
    assert f"  hint: continue with: llmeval run suite.yaml --resume {run_dir}" in stderr
    assert "Traceback" not in stderr
    assert_complete(run_dir)


def test_sigkill_leaves_a_resumable_run_even_with_a_torn_last_line(tmp_path: Path, slow_fake: FakeOpenAI) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    out = tmp_path / "runs"
    proc = start(["run", "suite.yaml", "-o", str(out), "--no-cache", "--format", ""], tmp_path, slow_fake)
    wait_for_lines_in(out, proc)
    proc.kill()
    proc.communicate(timeout=30)
    run_dir = run_dir_of(out)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert (manifest["status"], manifest["finished_at"]) == ("partial", None)  # never updated
    results = run_dir / "results.jsonl"
    before = lines_complete(results)
    with results.open("a") as f:  # what a kill in the middle of a write leaves behind
        f.write('{"case_id": "c19", "target": "bot", "epo')
    calls_before, requests_before = slow_fake.calls, len(slow_fake.requests)

    resume = start(["run", "--resume", str(run_dir), "--no-cache", "-q", "--format", ""], tmp_path, slow_fake)
    _, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err

    finished_before = {r["case_id"] for r in before}
    resumed = questions(slow_fake.requests[requests_before:])
    assert slow_fake.calls - calls_before == N_CASES - len(finished_before)
    assert not {f"question {c[1:]}" for c in finished_before} & set(resumed)
    assert_complete(run_dir)


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "slow_app.py").write_text(
        "import asyncio\n\nasync def answer(case):\n    await asyncio.sleep(0.05)\n    return 'ok'\n")
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(f"""\
        name: term
        defaults: {{concurrency: 1}}
        targets: [{{id: p, python: "slow_app:answer"}}]
        cases: [{", ".join(f"{{id: c{i}, input: q}}" for i in range(200))}]
        """))
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "llmeval", "run", "suite.yaml", "-o", str(out), "--format", ""],
                            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_lines_in(out, proc)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run_dir = run_dir_of(out)
    manifest = json.loads((run_dir / "run.json").read_text())
    done = lines(run_dir / "results.jsonl")
    assert manifest["status"] == "partial"
    assert manifest["summary"]["p"]["n"] == len(done)
    assert stderr.startswith(f"interrupted: {len(done)} of 200 results are in {run_dir}")


# --- resume in-process: what counts as finished -----------------------------------------------


def small_run(tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from typer.testing import CliRunner

    from llmeval.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_BASE", fake.base_url)
    (tmp_path / "suite.yaml").write_text(SUITE)
    return CliRunner().invoke(app, ["run", "--no-cache", "-q", "--format", "", *args])


def test_resume_retries_errored_results_and_keeps_the_rest(tmp_path: Path, fake_openai: FakeOpenAI,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import Reply

    fake_openai.script("question 03", Reply(status=500), "ECHO: question 03")
    first = small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "-o", "runs")
    # An errored case has no score: the exact_match gate does not pass on the other 19 alone.
    assert first.exit_code == 1
    run_dir = run_dir_of(tmp_path / "runs")
    assert [r["case_id"] for r in lines(run_dir / "results.jsonl") if r["error"]] == ["c03"]
    assert fake_openai.calls == N_CASES

    again = small_run(tmp_path, fake_openai, monkeypatch, "--resume", str(run_dir))
    assert again.exit_code == 0, again.output
    assert fake_openai.calls == N_CASES + 1
    assert questions(fake_openai.requests[N_CASES:]) == ["question 03"]
    assert_complete(run_dir)


def test_resume_of_a_complete_run_calls_nothing(tmp_path: Path, fake_openai: FakeOpenAI,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "-o", "runs").exit_code == 0
    run_dir = run_dir_of(tmp_path / "runs")
    before = json.loads((run_dir / "run.json").read_text())
    again = small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "--resume", str(run_dir))
    assert again.exit_code == 0
    assert fake_openai.calls == N_CASES
    assert_complete(run_dir)
    after = json.loads((run_dir / "run.json").read_text())
    assert (after["run_id"], after["started_at"]) == (before["run_id"], before["started_at"])


def test_resume_keeps_the_original_selection(tmp_path: Path, fake_openai: FakeOpenAI,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "-o", "runs", "--limit", "4")
    assert first.exit_code == 0
    run_dir = run_dir_of(tmp_path / "runs")
    assert small_run(tmp_path, fake_openai, monkeypatch, "--resume", str(run_dir)).exit_code == 0
    assert fake_openai.calls == 4
    assert len(lines(run_dir / "results.jsonl")) == 4


def test_resume_with_two_suites_is_a_usage_error(tmp_path: Path, fake_openai: FakeOpenAI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result = small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "suite.yaml", "--resume", "runs/x")
    assert (result.exit_code, result.stderr) == (
        2, "error: --resume continues one run: give at most one suite file with it\n")


def test_resume_from_another_directory_finds_the_suite(tmp_path: Path, fake_openai: FakeOpenAI,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from llmeval.cli.main import app

    assert small_run(tmp_path, fake_openai, monkeypatch, "suite.yaml", "-o", "runs", "--limit", "2").exit_code == 0
    run_dir = run_dir_of(tmp_path / "runs").resolve()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "-q", "--format", ""])
    assert result.exit_code == 0, result.output
    assert fake_openai.calls == 2
