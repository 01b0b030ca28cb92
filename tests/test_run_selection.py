"""`llmeval run --case`, `--model` and `--rerun-failed`, and merging a run with its rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirunhelpers import invoke, module, results, write
from tests.fakes import FakeOpenAI

FLAKY = """\
from pathlib import Path

def answer(case):
    # Fails on the first call for case b; a later call answers.
    marker = Path(f"called-{case.id}")
    first = not marker.exists()
    marker.write_text("x")
    if case.id == "b" and first:
        raise RuntimeError("backend hiccup")
    return {"a": "YES", "b": "NOPE", "c": "wrong"}[case.id]
"""


def suite(mod: str) -> str:
    return f"""\
        name: pick
        targets:
          - {{id: up, python: "{mod}:answer"}}
        cases:
          - {{id: a, input: yes, expected: YES}}
          - {{id: b, input: no, expected: NOPE}}
          - {{id: c, input: ok, expected: OK}}
        metrics: [exact_match]
        gates: [{{metric: exact_match, min: 0.9}}]
        """


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = module(FLAKY)
    write(suite(mod))
    return mod


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def new_run(before: set[Path]) -> Path:
    [run_dir] = set(Path("runs").iterdir()) - before
    return run_dir


def test_case_runs_only_the_named_cases(flaky: str) -> None:
    res = invoke("run", "suite.yaml", "--case", "c", "--case", "a", "-q")
    assert res.exit_code == 1, res.output  # a passes, c fails the exact_match gate
    [run_dir] = Path("runs").iterdir()
    assert [r["case_id"] for r in results(run_dir)] == ["a", "c"]
    assert run_json(run_dir)["options"]["cases"] == ["c", "a"]


def test_an_unknown_case_id_is_a_usage_error_with_a_suggestion(flaky: str) -> None:
    res = invoke("run", "suite.yaml", "--case", "bb", "-q")
    assert res.exit_code == 2
    assert res.stderr == "error: unknown case id(s) bb in suite pick\n  hint: did you mean 'b'?\n"
    assert not Path("runs").exists()


def test_rerun_failed_runs_the_failed_and_errored_cases_into_a_new_run(flaky: str) -> None:
    invoke("run", "suite.yaml", "-q", "--format", "")
    [first] = Path("runs").iterdir()
    assert {r["case_id"]: (r["passed"], r["error"] is not None) for r in results(first)} == {
        "a": (True, False), "b": (False, True), "c": (False, False)}
    res = invoke("run", "--rerun-failed", str(first), "-q", "--format", "")  # the suite comes from the run
    assert res.exit_code == 1, res.output  # c still fails
    rerun = new_run({first})
    assert [(r["case_id"], r["output"], r["error"]) for r in results(rerun)] == [("b", "NOPE", None),
                                                                                  ("c", "wrong", None)]
    manifest = run_json(rerun)
    assert manifest["rerun_of"] == {"run_id": first.name, "dir": str(first), "cases": ["b", "c"]}
    assert manifest["options"]["cases"] == ["b", "c"]

    merged = invoke("merge", str(first), str(rerun), "-o", "merged", "-q", "--format", "")
    assert merged.exit_code == 1, merged.output  # 2 of 3 exact: below the 0.9 gate
    [merged_dir] = Path("merged").iterdir()
    assert {r["case_id"]: r["output"] for r in results(merged_dir)} == {"a": "YES", "b": "NOPE", "c": "wrong"}
    summary = run_json(merged_dir)["summary"]["up"]
    assert (summary["exact_match"]["mean"], summary["errors"]) == (pytest.approx(2 / 3), 0)
    assert run_json(merged_dir)["merged_from"] == [str(first), str(rerun)]

    compared = invoke("compare", str(first), str(rerun), "--json")
    assert compared.exit_code == 0, compared.output
    doc = json.loads(compared.stdout)
    assert (doc["only_in_base"], doc["only_in_cand"]) == ([["a", "up"]], [])  # paired on b and c


def test_rerun_failed_with_nothing_failed_says_so(flaky: str) -> None:
    invoke("run", "suite.yaml", "--case", "a", "-q", "--format", "")
    [first] = Path("runs").iterdir()
    res = invoke("run", "--rerun-failed", str(first), "-q")
    assert res.exit_code == 2
    assert res.stderr == f"error: --rerun-failed {first}: no result failed or errored; nothing to rerun\n"


def test_merge_refuses_a_rerun_of_a_changed_suite(flaky: str) -> None:
    invoke("run", "suite.yaml", "-q", "--format", "")
    [first] = Path("runs").iterdir()
    Path("suite.yaml").write_text(Path("suite.yaml").read_text() + "description: edited\n")
    invoke("run", "suite.yaml", "--rerun-failed", str(first), "-q", "--format", "")
    rerun = new_run({first})
    res = invoke("merge", str(first), str(rerun), "-o", "merged", "-q")
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {rerun} reran a changed suite file (sha256 differs from {first})")


MODEL_SUITE = """\
    name: chat
    targets:
      - {id: mini, model: openai/fake-model, api_base: "${FAKE_BASE}"}
      - {id: big, model: openai/fake-model, api_base: "${FAKE_BASE}"}
      - {id: app, python: "builtins:repr"}
    cases: [{id: c1, input: hello}]
    """


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> FakeOpenAI:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write(MODEL_SUITE)
    return fake_openai


def test_model_for_one_target_and_for_all_model_targets(models: FakeOpenAI) -> None:
    res = invoke("run", "suite.yaml", "--model", "openai/all-model", "--model", "big=openai/big-model", "-q",
                 "--no-cache")
    assert res.exit_code == 0, res.output
    assert sorted(r["model"] for r in models.requests) == ["all-model", "big-model"]
    [run_dir] = Path("runs").iterdir()
    manifest = run_json(run_dir)
    assert {t["id"]: t.get("model") for t in manifest["targets"]} == {
        "mini": "openai/all-model", "big": "openai/big-model", "app": None}
    assert manifest["options"]["models"] == {"": "openai/all-model", "big": "openai/big-model"}


@pytest.mark.parametrize(("flag", "message"), [
    ("app=openai/x",
     "error: --model app=openai/x: target 'app' is a python target; --model applies to model targets\n"),
    ("minni=openai/x",
     "error: --model minni=openai/x: suite chat has no target 'minni'\n  hint: did you mean 'mini'?\n"),
    ("big=", "error: --model expects TARGET=MODEL or MODEL, got 'big='\n"),
])
def test_model_errors_are_usage_errors(models: FakeOpenAI, flag: str, message: str) -> None:
    res = invoke("run", "suite.yaml", "--model", flag, "-q")
    assert (res.exit_code, res.stderr) == (2, message)
    assert models.requests == []
