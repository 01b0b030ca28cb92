"""The Python API: `llmeval.evaluate` / `aevaluate` on a path, a dict or a Suite, the Run it returns,
running inside an event loop (Jupyter), its errors, and `import llmeval` staying light."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmeval
from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]

APP = """\
def answer(case):
    return "You have 30 days." if "return" in case.input else "Ask the shop."
"""


def suite_dict(**extra: object) -> dict:
    return {
        "name": "refund-bot",
        "targets": [{"id": "app", "python": "refund_app:answer"}],
        "cases": [
            {"id": "window", "input": "How long do I have to return an item?", "expected": "30 days", "tags": ["a"]},
            {"id": "parcel", "input": "Where is my parcel?", "expected": "tracking", "tags": ["b"]},
        ],
        "metrics": [{"contains": "30 days"}],
        "gates": [{"metric": "pass_rate", "min": 0.5}],
        **extra,
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "refund_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_dir_lists_the_public_names_and_import_stays_light() -> None:
    assert {"evaluate", "aevaluate", "load_run", "load_suite", "Run", "RunOptions", "ConfigError", "suite",
            "register_metric"} <= set(dir(llmeval))
    assert "Any" not in dir(llmeval) and "annotations" not in dir(llmeval)
    code = ("import sys, llmeval; heavy = [m for m in ('pydantic', 'numpy', 'pandas', 'litellm', 'llmeval.api') "
            "if m in sys.modules]; print(heavy, callable(llmeval.suite))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[] True", out.stderr


def test_evaluate_a_dict_returns_a_run_with_summary_gates_and_a_dataframe(project: Path) -> None:
    run = llmeval.evaluate(suite_dict(), out_dir="out")  # a str, not only a Path
    assert isinstance(run, llmeval.Run)
    assert run.path.parent == Path("out") and (run.path / "report.html").is_file()
    assert run.passed is True and run.status == "complete"
    assert run.summary["app"]["contains"]["mean"] == 0.5 and run.summary["app"]["pass_rate"] == 0.5
    assert [(g["name"], g["value"], g["passed"]) for g in run.gates] == [("pass_rate >= 0.5", 0.5, True)]
    assert {r.case_id: r.passed for r in run.results} == {"window": True, "parcel": False}
    df = run.to_dataframe()
    assert sorted(zip(df.case_id, df.contains, strict=True)) == [("parcel", 0.0), ("window", 1.0)]
    assert repr(run).startswith(f"Run(run_id='{run.run_id}', suite='refund-bot', status='complete', passed=True")
    manifest = json.loads((run.path / "run.json").read_text())
    assert manifest["suite"]["path"].endswith("<dict>") and len(manifest["suite"]["sha256"]) == 64


def test_a_failed_gate_is_passed_false_not_an_exception(project: Path) -> None:
    run = llmeval.evaluate(suite_dict(gates=[{"metric": "contains", "min": 0.9}]), out_dir=project / "runs")
    assert run.passed is False
    assert run.gates[0]["value"] == 0.5 and run.gates[0]["passed"] is False


SUITE_YAML = """\
name: refund-bot
targets:
  - {id: app, python: "refund_app:answer"}
cases:
  - {id: window, input: How long do I have to return an item?, expected: 30 days, tags: [a]}
  - {id: parcel, input: Where is my parcel?, expected: tracking, tags: [b]}
metrics:
  - contains: "30 days"
"""


def test_evaluate_a_path_or_a_loaded_suite_with_case_and_tag_overrides(project: Path) -> None:
    Path("suite.yaml").write_text(SUITE_YAML)
    by_path = llmeval.evaluate("suite.yaml", cases=["parcel"])
    assert [r.case_id for r in by_path.results] == ["parcel"] and by_path.path.parent == Path("runs")
    loaded = llmeval.load_suite("suite.yaml")
    by_suite = llmeval.evaluate(loaded, tag="a", formats=[])
    assert [r.case_id for r in by_suite.results] == ["window"]
    assert not (by_suite.path / "report.html").exists()
    assert llmeval.load_run(by_suite.path).results[0].output == "You have 30 days."


def test_a_dict_suite_resolves_relative_paths_against_base_dir(project: Path, tmp_path_factory) -> None:
    data = tmp_path_factory.mktemp("data")
    (data / "qa.jsonl").write_text(json.dumps({"id": "q1", "input": "Can I return it?", "expected": "30 days"}) + "\n")
    run = llmeval.evaluate({**suite_dict(gates=[]), "cases": [], "dataset": {"path": "qa.jsonl"}}, base_dir=data)
    assert [(r.case_id, r.scores["contains"].value) for r in run.results] == [("q1", 1.0)]
    with pytest.raises(llmeval.ConfigError) as err:
        llmeval.evaluate({**suite_dict(gates=[]), "cases": [], "dataset": {"path": "qa.jsonl"}})
    assert err.value.render().startswith("<dict>: dataset file not found: qa.jsonl")


def test_errors_are_the_cli_exception_classes_and_name_the_dict(project: Path) -> None:
    with pytest.raises(llmeval.ConfigError) as err:
        llmeval.evaluate(suite_dict(metrics=[{"rouge": {"threshhold": 0.3}}]))
    assert err.value.render() == ("<dict>: unknown option 'threshhold' for metric 'rouge'\n"
                                  "  hint: did you mean 'threshold'?")
    assert err.value.exit_code == 2
    with pytest.raises(llmeval.UsageError) as usage:
        llmeval.evaluate(suite_dict(), concurency=4)
    assert usage.value.render() == "evaluate() got an unknown option 'concurency'\n  hint: did you mean 'concurrency'?"
    with pytest.raises(llmeval.UsageError, match="unknown case id\\(s\\) nope in suite refund-bot"):
        llmeval.evaluate(suite_dict(), cases=["nope"])
    assert not Path("runs").exists()  # nothing ran


def test_a_run_where_every_case_errors_raises_run_error_carrying_the_run(project: Path) -> None:
    Path("broken_app.py").write_text("def answer(case):\n    raise RuntimeError('backend down')\n")
    with pytest.raises(llmeval.RunError) as err:
        llmeval.evaluate(suite_dict(targets=[{"id": "app", "python": "broken_app:answer"}]))
    assert err.value.message.startswith("every case of target(s) app errored") and "backend down" in err.value.message
    assert err.value.exit_code == 3
    assert err.value.run.status == "failed" and err.value.run.passed is False
    assert [("backend down" in r.error.message) for r in err.value.run.results] == [True, True]


def test_aevaluate_runs_inside_the_callers_event_loop(project: Path) -> None:
    async def main() -> tuple[llmeval.Run, llmeval.Run]:
        loop = asyncio.get_running_loop()
        ticks = 0

        async def ticker() -> None:  # the loop stays free while the suite runs
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = loop.create_task(ticker())
        one, two = await asyncio.gather(llmeval.aevaluate(suite_dict(), case="window"),
                                        llmeval.aevaluate(suite_dict(), case="parcel"))
        task.cancel()
        assert ticks > 0
        return one, two

    one, two = asyncio.run(main())
    assert ([r.case_id for r in one.results], [r.case_id for r in two.results]) == (["window"], ["parcel"])
    assert one.path != two.path


def test_evaluate_works_inside_a_running_loop_as_in_jupyter(project: Path) -> None:
    async def cell() -> llmeval.Run:
        # A notebook cell runs inside the kernel's loop: asyncio.run() would raise there.
        return llmeval.evaluate(suite_dict())

    run = asyncio.run(cell())
    assert run.passed and len(run.results) == 2


def test_run_options_accept_strings_for_paths(project: Path) -> None:
    from llmeval.pipeline.options import RunOptions

    outcome = llmeval.run_suite(llmeval.load_suite(_write_yaml()), RunOptions(out_dir="elsewhere", formats=[]))
    assert outcome.run_dir.parent == Path("elsewhere") and outcome.exit_code == 0


def _write_yaml() -> Path:
    Path("suite.yaml").write_text(SUITE_YAML)
    return Path("suite.yaml")


def test_model_override_points_every_model_target_at_another_model(tmp_path: Path, fake_openai: FakeOpenAI,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = {
        "name": "chat",
        "targets": [{"id": "a", "model": "openai/fake-model", "api_base": fake_openai.base_url},
                    {"id": "b", "model": "openai/fake-model", "api_base": fake_openai.base_url}],
        "cases": [{"id": "c1", "input": "hello"}],
    }
    loaded = llmeval.load_suite(data)
    run = llmeval.evaluate(loaded, model="openai/other-model", no_cache=True)
    assert loaded.spec.targets[0].model == "openai/fake-model"  # the caller's Suite is not changed
    assert sorted(r["model"] for r in fake_openai.requests) == ["other-model", "other-model"]
    assert [t["model"] for t in run.manifest["targets"]] == ["openai/other-model", "openai/other-model"]
    fake_openai.reset()
    llmeval.evaluate(data, model={"b": "openai/third"}, no_cache=True)
    assert sorted(r["model"] for r in fake_openai.requests) == ["fake-model", "third"]
