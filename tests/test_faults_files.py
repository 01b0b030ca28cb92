"""The fault matrix, files half: a damaged results.jsonl or run.json, and SIGKILL then --resume.

A line in the middle of results.jsonl that holds no readable result is skipped and named; every
readable line after it is kept; the commands that feed a decision refuse the run (exit 2) unless
--allow-damaged; --resume moves the damaged lines aside and never deletes a readable one. Killed
at random moments and resumed each time, a run ends equal to one that was never interrupted.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import llmeval
from llmeval.cli.main import app
from tests.fakes import FakeRAG

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
N = 6
CASES = "".join(f"  - {{id: c{i}, input: q{i}, expected: Q{i}}}\n" for i in range(N))
SUITE = f"""\
name: damaged
targets: [{{id: up, python: "counting_app:answer"}}]
cases:
{CASES}metrics: [exact_match]
gates: [{{metric: pass_rate, min: 1.0}}]
"""
APP = """\
from pathlib import Path

def answer(case):
    with Path("calls.log").open("a") as f:
        f.write(case.id + "\\n")
    return str(case.input).upper()
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "counting_app.py").write_text(APP)
    (tmp_path / "suite.yaml").write_text(SUITE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def fresh_run(*args: str) -> Path:
    before = set(Path("runs").glob("*"))
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args)
    assert result.exit_code == 0, result.output
    [run_dir] = set(Path("runs").glob("*")) - before
    return run_dir


def damage(run_dir: Path, lines: dict[int, bytes]) -> list[bytes]:
    """Replace the given 1-based lines of results.jsonl; returns the file's lines as they were."""
    path = run_dir / "results.jsonl"
    original = path.read_bytes().splitlines(keepends=True)
    damaged = [lines[i] + b"\n" if i in lines else raw for i, raw in enumerate(original, start=1)]
    path.write_bytes(b"".join(damaged))
    return original


def calls() -> list[str]:
    log = Path("calls.log")
    return log.read_text().split() if log.exists() else []


GARBAGE = b'{"case_id": "c1", "target": "up", "epo\x00ch": garbage'


def refused(run_dir: Path, n_readable: int = N - 1) -> str:
    return (f"error: {run_dir}/results.jsonl: line 2 holds no readable result (not JSON: Invalid control character at "
            f"column 39); {n_readable} results are readable\n"
            f"  hint: pass --allow-damaged (Python: allow_damaged=True) to go on with the {n_readable} readable "
            f"results, or repair the run: llmeval run --resume {run_dir} moves the damaged lines to "
            "results.damaged.jsonl and runs their cases again\n")


def allowed(run_dir: Path) -> str:
    return (f"warning: {run_dir}/results.jsonl: skipped 1 damaged line (line 2); going on with {N - 1} results "
            "(--allow-damaged)\n")


# --- a garbage line in the middle --------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["report", "{run}", "--format", "md"],
    ["compare", "{good}", "{run}"],
    ["compare", "{run}", "{good}"],
    ["rescore", "{run}", "-q"],
    ["export", "{run}", "--format", "jsonl"],
    ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", "--baseline", "{run}"],
], ids=["report", "compare-base", "compare-cand", "rescore", "export", "run-baseline"])
def test_a_damaged_run_is_refused_unless_allowed(command: list[str]) -> None:
    good = fresh_run()
    run_dir = fresh_run()
    damage(run_dir, {2: GARBAGE})
    args = [a.format(run=run_dir, good=good) for a in command]
    result = invoke(*args)
    assert (result.exit_code, result.stderr) == (2, refused(run_dir))
    assert len(list(Path("runs").iterdir())) == 2  # nothing written

    result = invoke(*args, "--allow-damaged")
    assert result.exit_code == 0, result.output
    assert result.stderr == allowed(run_dir)


def test_every_readable_result_after_the_bad_line_is_kept() -> None:
    run_dir = fresh_run()
    damage(run_dir, {2: GARBAGE})
    result = invoke("export", str(run_dir), "--format", "jsonl", "--allow-damaged")
    assert result.exit_code == 0
    rows = [json.loads(x) for x in (run_dir / "export.jsonl").read_text().splitlines()]
    # Before: reading stopped at line 2, so c2..c5 were silently missing.
    assert [r["case_id"] for r in rows] == ["c0", "c2", "c3", "c4", "c5"]


def test_rescore_and_merge_of_damaged_runs_record_what_was_missing() -> None:
    run_dir = fresh_run()
    damage(run_dir, {2: GARBAGE, 4: b"[1, 2, 3]"})
    result = invoke("rescore", str(run_dir), "-q", "--format", "", "--allow-damaged")
    assert result.exit_code == 0, result.output
    new = max(Path("runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    manifest = json.loads((new / "run.json").read_text())
    assert manifest["damaged_inputs"] == [{"file": f"{run_dir}/results.jsonl", "lines": [2, 4]}]
    assert manifest["summary"]["up"]["n"] == 4

    shards = [fresh_run("--shard", f"{i}/2") for i in (1, 2)]
    damage(shards[0], {1: b"not json at all"})
    result = invoke("merge", *map(str, shards), "-o", "merged", "-q", "--format", "")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {shards[0]}/results.jsonl: line 1 holds no readable result (not JSON: Expecting value at column 1); ")
    assert not Path("merged").exists()
    result = invoke("merge", *map(str, shards), "-o", "merged", "-q", "--format", "", "--allow-damaged")
    assert result.exit_code == 0, result.output
    [merged] = Path("merged").iterdir()
    m = json.loads((merged / "run.json").read_text())
    assert m["damaged_inputs"] == [{"file": f"{shards[0]}/results.jsonl", "lines": [1]}]
    assert m["summary"]["up"]["n"] == N - 1


def test_load_run_refuses_by_default_and_lists_the_damaged_lines_when_allowed() -> None:
    run_dir = fresh_run()
    damage(run_dir, {2: GARBAGE, 3: b"\xff\xfe not utf-8", 5: b'{"target": "up"}'})
    with pytest.raises(llmeval.DamagedRunError) as e:
        llmeval.load_run(run_dir)
    assert e.value.lines == (2, 3, 5)
    assert e.value.message.startswith(f"{run_dir}/results.jsonl: 3 damaged lines (lines 2, 3, 5) hold no readable "
                                      "result (line 2: not JSON")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run = llmeval.load_run(run_dir, allow_damaged=True)
    assert [r.case_id for r in run.results] == ["c0", "c3", "c5"]
    assert [(d.line, d.reason) for d in run.damaged] == [
        (2, "not JSON: Invalid control character at column 39"),
        (3, "not UTF-8 text (byte 0xff at offset 0)"),
        (5, "not a result (no string 'case_id')"),
    ]
    assert [str(w.message) for w in seen if issubclass(w.category, llmeval.LlmevalWarning)] == [
        f"{run_dir}/results.jsonl: skipped 3 damaged lines (lines 2, 3, 5); going on with 3 results (--allow-damaged)"]


def test_resume_keeps_every_readable_line_and_sets_the_damaged_ones_aside() -> None:
    run_dir = fresh_run()
    assert sorted(calls()) == [f"c{i}" for i in range(N)]
    original = damage(run_dir, {2: GARBAGE, 4: b"\xff\xfe not utf-8"})
    result = invoke("run", "--resume", str(run_dir), "-q", "--format", "")
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: {run_dir}/results.jsonl: 2 damaged lines (lines 2, 4) moved to "
                             f"{run_dir}/results.damaged.jsonl; the cases they held run again\n")
    # Only the two cases whose lines were damaged were called again (before: c1 and everything after it).
    assert sorted(calls()[N:]) == ["c1", "c3"]
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["case_id"] for r in rows) == [f"c{i}" for i in range(N)]
    kept = {json.loads(raw)["case_id"]: json.loads(raw) for i, raw in enumerate(original, 1) if i not in (2, 4)}
    assert all({k: v for k, v in r.items() if k != "scores"} == {k: v for k, v in kept[r["case_id"]].items()
                                                                 if k != "scores"}
               for r in rows if r["case_id"] in kept)
    aside = [json.loads(x) for x in (run_dir / "results.damaged.jsonl").read_text().splitlines()]
    assert [(d["line"], d["text"].encode("utf-8", "surrogateescape")) for d in aside] == [
        (2, GARBAGE), (4, b"\xff\xfe not utf-8")]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert invoke("report", str(run_dir), "--format", "md").exit_code == 0  # repaired


def test_a_torn_last_line_is_not_damage_and_only_resume_cuts_it() -> None:
    run_dir = fresh_run()
    path = run_dir / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:30])  # a kill in the middle of the last write
    torn = path.read_bytes()
    result = invoke("report", str(run_dir), "--format", "md")
    assert result.exit_code == 0
    assert result.stderr == (f"warning: {path}: ignored its incomplete last line {N} (a result being written when "
                             "the run was stopped)\n")
    assert path.read_bytes() == torn
    result = invoke("run", "--resume", str(run_dir), "-q", "--format", "")
    assert result.exit_code == 0
    assert result.stderr == (f"warning: {path}: cut its incomplete last line {N} (a result being written when the "
                             "run was stopped); that case runs again\n")
    assert calls()[N:] == [f"c{N - 1}"]
    assert not (run_dir / "results.damaged.jsonl").exists()


# --- a damaged run.json ------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"schema_version": 1, "run_id": "x", "stat', "not valid JSON: Unterminated string starting at line 1 "
                                                  "column 38 (the file ends early: truncated?)"),
    (b"", "not valid JSON: Expecting value at line 1 column 1 (the file ends early: truncated?)"),
    (b"\x89PNG\r\n", "not UTF-8 text (byte 0x89 at offset 0)"),
    (b"[]", "a JSON list, not an object"),
    (b'{"schema_version": 1, "run_id": "x", "status": "complete"}', "it lacks suite (name, path, sha256)"),
], ids=["truncated", "empty", "binary", "list", "no-suite"])
def test_a_damaged_run_json_is_a_clean_usage_error(content: bytes, problem: str) -> None:
    run_dir = fresh_run()
    (run_dir / "run.json").write_bytes(content)
    message = f"error: {run_dir}/run.json is not a readable run manifest: {problem}\n"
    for args in (["report", str(run_dir)], ["compare", str(run_dir), str(run_dir)], ["rescore", str(run_dir)],
                 ["export", str(run_dir)], ["merge", str(run_dir), "-o", "merged"],
                 ["run", "--resume", str(run_dir), "-q"]):
        result = invoke(*args)
        assert (result.exit_code, result.stderr) == (2, message), args


# --- SIGKILL at random moments, then --resume, again and again ---------------------------------

KILL_SEED = 42  # its first 8 draws: 6 kills after progress, 2 at any moment of a resume
N_KILL_CASES = 100
QUESTIONS = ["How long is the refund window?", "Can gift cards be returned?", "Is return shipping free?",
             "How are refunds paid?", "Can I exchange for another size?"]
GIFT = "Gift cards cannot be returned or exchanged for cash."
KILL_CASES = "".join(f"  - {{id: k{i:03d}, input: '{QUESTIONS[i % 5]} ({i})', expected: '{GIFT}'}}\n"
                     for i in range(N_KILL_CASES))
KILL_SUITE = f"""\
name: killed
defaults: {{concurrency: 2, retries: 0, timeout_s: 30}}
targets:
  - id: rag
    http: {{url: "${{RAG_URL}}/ask", body: {{question: "{{{{ input }}}}", top_k: 1}}, output: answer}}
cases:
{KILL_CASES}metrics: [exact_match, {{contains: {{value: days}}}}]
gates: [{{metric: exact_match, min: 0.1}}]
"""


def start(args: list[str], rag: FakeRAG) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_URL": rag.url}
    return subprocess.Popen([sys.executable, "-m", "llmeval", *args, "--no-cache", "-q", "--format", ""],
                            cwd=Path.cwd(), env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for(condition: Any, proc: subprocess.Popen[str], what: str, timeout: float = 120) -> bool:
    """Poll until `condition()`; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.005)
    return True


def comparable(run_dir: Path) -> tuple[dict[tuple[str, str, int], Any], dict[str, Any], list[Any], str]:
    """What must be equal between an interrupted and an uninterrupted run: per key the output,
    scores and verdict; the summary without latencies; the gates; the status."""
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    keys = Counter((r["case_id"], r["target"], r["epoch"]) for r in rows)
    assert max(keys.values()) == 1, "a result is duplicated"
    by_key = {(r["case_id"], r["target"], r["epoch"]): (r["output"], r["error"], r["scores"], r["passed"])
              for r in rows}
    m = json.loads((run_dir / "run.json").read_text())
    summary = {t: {k: v for k, v in s.items() if k != "latency_ms"} for t, s in m["summary"].items()}
    return by_key, summary, m["gates"], m["status"]


def test_sigkill_at_random_moments_then_resume_ends_equal_to_an_uninterrupted_run(
        tmp_path: Path, fake_rag: FakeRAG) -> None:
    fake_rag.latency_ms = 25
    Path("suite.yaml").write_text(KILL_SUITE)
    rng = random.Random(KILL_SEED)
    proc = start(["run", "suite.yaml", "-o", "killed"], fake_rag)
    assert wait_for(lambda: any(Path("killed").glob("*/results.jsonl")), proc, "run directory"), proc.communicate()
    [run_dir] = Path("killed").iterdir()
    results = run_dir / "results.jsonl"
    kills, moments = 0, []
    while kills < 8:
        if kills and rng.random() < 0.25:  # any moment of a resume: start-up, the rewrite, the first calls
            time.sleep(rng.uniform(0.0, 0.8))
            moment = "start"
        else:  # after some progress, observed in the file, plus a random delay
            target = complete_lines(results) + rng.randint(1, 8)
            if not wait_for(lambda t=target: complete_lines(results) >= t, proc, f"{target} results"):
                break
            time.sleep(rng.uniform(0.0, 0.05))
            moment = "progress"
        if proc.poll() is not None:
            break
        proc.kill()
        proc.communicate(timeout=30)
        kills += 1
        moments.append((moment, complete_lines(results)))
        proc = start(["run", "--resume", str(run_dir)], fake_rag)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert kills >= 5, f"only {kills} kills landed before the run finished: {moments}"
    calls_interrupted = fake_rag.calls

    reference = start(["run", "suite.yaml", "-o", "reference"], fake_rag)
    _, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err
    [ref_dir] = Path("reference").iterdir()

    got, want = comparable(run_dir), comparable(ref_dir)
    assert len(got[0]) == N_KILL_CASES  # 0 lost
    assert got == want
    # Each kill cuts off at most the calls in flight (concurrency 2); nothing else is called twice.
    assert N_KILL_CASES <= calls_interrupted <= N_KILL_CASES + 2 * kills
    assert fake_rag.calls - calls_interrupted == N_KILL_CASES
