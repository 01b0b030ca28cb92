"""Sentence BLEU, chrF and ROUGE scored in a process pool give the values one process gives."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import llmeval
from llmeval.metrics import parallel

pytest.importorskip("sacrebleu")

APP = """\
def answer(case):
    return case.vars["output"]
"""
WORDS = ("the a of to and in is was report market company people year city water policy data model value "
         "price energy school health court said announced reported increased agreed opened café naïve über "
         "größe 東京 天気").split()


def cases(n: int) -> list[dict]:
    """n cases of 5-60 words; some with two references, some non-ASCII, one with an empty output."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        ref = [rng.choice(WORDS) for _ in range(rng.randint(5, 60))]
        hyp = [w if rng.random() < 0.6 else rng.choice(WORDS) for w in ref]
        text = " ".join(ref[: len(ref) // 2]) + ". " + " ".join(ref[len(ref) // 2 :]) + "."
        expected: str | list[str] = [text, " ".join(reversed(ref))] if i % 7 == 0 else text
        out.append({"id": f"c{i}", "input": "q", "expected": expected,
                    "vars": {"output": "" if i == 3 else " ".join(hyp)}})
    return out


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "echo_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(parallel.POOL_MIN_VAR, "100")
    return tmp_path


def per_case(project: Path, monkeypatch: pytest.MonkeyPatch, workers: int, n: int,
             metrics: list | None = None) -> dict[str, dict]:
    monkeypatch.setenv(parallel.WORKERS_VAR, str(workers))
    suite = {"name": "pool", "targets": [{"id": "app", "python": "echo_app:answer"}], "cases": cases(n),
             "metrics": metrics or ["bleu", "chrf", {"rouge": {"use_stemmer": True}}]}
    run = llmeval.evaluate(suite, out_dir=project / f"runs{workers}")
    assert run.status == "complete"
    return {r.case_id: {k: s.to_dict() for k, s in r.scores.items()} for r in run.results}


def test_pool_scores_equal_one_process_case_by_case(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sacrebleu

    parallel.shutdown_pool()
    one = per_case(project, monkeypatch, 1, 400)
    assert parallel.running_workers() == 0
    two = per_case(project, monkeypatch, 2, 400)
    assert parallel.running_workers() == 2  # the pool did the scoring
    assert list(two) == list(one) and two == one
    assert set(one["c1"]) == {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    c1 = cases(2)[1]
    bleu = sacrebleu.sentence_bleu(c1["vars"]["output"], [c1["expected"]]).score
    assert two["c1"]["bleu"]["value"] == pytest.approx(bleu / 100, abs=1e-12) and 0 < bleu < 100
    assert two["c3"]["bleu"]["value"] == 0.0 and two["c3"]["rouge1"]["value"] == 0.0  # the empty output
    assert two["c0"]["rouge1"]["details"]["reference_index"] in (0, 1)  # two references: the best one
    parallel.shutdown_pool()


def test_rouge_on_the_pure_python_engine_uses_the_pool_with_the_same_values(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # rouge-score-rs hidden here and in the workers (they take this process's sys.path): the
    # fallback engine is pure Python, the one ROUGE sends to the pool (the Rust one is native).
    shim = project / "shim"
    shim.mkdir()
    (shim / "rouge_score_rs.py").write_text("raise ImportError('hidden by the test')\n")
    monkeypatch.syspath_prepend(str(shim))
    monkeypatch.delitem(sys.modules, "rouge_score_rs", raising=False)
    parallel.shutdown_pool()
    metrics = [{"rouge": {"types": ["rouge1", "rougeL", "rougeLsum"]}}]
    one = per_case(project, monkeypatch, 1, 300, metrics)
    two = per_case(project, monkeypatch, 2, 300, metrics)
    assert parallel.running_workers() == 2
    assert two == one and 0 < two["c1"]["rougeL"]["value"] < 1
    parallel.shutdown_pool()


def test_below_the_threshold_no_pool_starts(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parallel.shutdown_pool()
    monkeypatch.setenv(parallel.POOL_MIN_VAR, "500")
    per_case(project, monkeypatch, 2, 120)
    assert parallel.running_workers() == 0


def test_a_bad_worker_count_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.WORKERS_VAR, "two")
    suite = {"name": "pool", "targets": [{"id": "app", "python": "echo_app:answer"}], "cases": cases(3),
             "metrics": ["bleu"]}
    with pytest.raises(llmeval.UsageError, match="LLMEVAL_METRIC_WORKERS='two' is not a whole number >= 1"):
        llmeval.evaluate(suite, out_dir=project / "runs")


SCRIPT = """\
import llmeval
from llmeval.metrics import parallel

def main():
    run = llmeval.evaluate({"name": "s", "targets": [{"id": "app", "python": "counting_app:answer"}],
                            "cases": [{"id": f"c{i}", "input": "q", "expected": "a b c d", "vars": {"output": "a b c"}}
                                      for i in range(150)], "metrics": ["bleu"]}, out_dir="runs", formats=[])
    print(run.status, parallel.running_workers())
"""
COUNTING_APP = """\
def answer(case):
    with open("calls.txt", "a") as f:
        f.write(case.id + "\\n")
    return case.vars["output"]
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_runs_once_and_uses_the_pool_only_under_a_main_guard(tmp_path: Path, guarded: bool) -> None:
    (tmp_path / "counting_app.py").write_text(COUNTING_APP)
    tail = 'if __name__ == "__main__":\n    main()\n' if guarded else "main()\n"
    (tmp_path / "script.py").write_text(SCRIPT + tail)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{tmp_path}", parallel.WORKERS_VAR: "2",
           parallel.POOL_MIN_VAR: "100"}
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["complete", "2" if guarded else "0"]
    assert len((tmp_path / "calls.txt").read_text().split()) == 150  # each case called once: no re-run
