"""`llmeval run` options: case and target selection (--limit, --tag, -t, --shard), --var, and
command-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirunhelpers import UPPER, invoke, module, only_run_dir, results, suite_with, write
from tests.fakes import FakeOpenAI


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # datasets writes its cache here
    return tmp_path


# --- selecting cases and targets ---------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--limit", "2"], ["a", "b"]),
    (["--tag", "smoke"], ["a", "c"]),
    (["--tag", "slow", "--tag", "smoke"], ["a", "b", "c"]),
    (["--tag", "slow", "--limit", "1"], ["b"]),
])
def test_limit_and_tag_select_cases(args: list[str], expected: list[str]) -> None:
    write(suite_with(module(UPPER)))
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args).exit_code == 0
    assert sorted(r["case_id"] for r in results(only_run_dir())) == expected
    options = json.loads((only_run_dir() / "run.json").read_text())["options"]
    assert options["limit"] == (int(args[args.index("--limit") + 1]) if "--limit" in args else None)


def test_tag_that_selects_nothing_is_an_error() -> None:
    write(suite_with(module(UPPER)))
    result = invoke("run", "suite.yaml", "-o", "runs", "--tag", "nightly")
    assert (result.exit_code, result.stderr) == (2, "error: no cases selected (tags: nightly)\n")


def test_target_flag_selects_targets() -> None:
    mod = module(UPPER + "\ndef lower(case):\n    return str(case.input)\n")
    write(f"""\
        name: two
        targets:
          - {{id: up, python: "{mod}:answer"}}
          - {{id: same, python: "{mod}:lower"}}
        cases: [{{id: a, input: x}}]
        """)
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", "-t", "same").exit_code == 0
    assert [r["target"] for r in results(only_run_dir())] == ["same"]
    result = invoke("run", "suite.yaml", "-o", "runs", "-t", "down")
    assert (result.exit_code, result.stderr) == (
        2, "error: unknown target(s) down for suite two\n  hint: targets: up, same\n")


def test_shards_split_cases_disjointly() -> None:
    mod = module(UPPER)
    cases = ", ".join(f"{{id: c{i}, input: q{i}}}" for i in range(40))
    write(f"""\
        name: sharded
        targets: [{{id: up, python: "{mod}:answer"}}]
        cases: [{cases}]
        """)
    seen = []
    for shard in ("1/3", "2/3", "3/3"):
        out = f"runs-{shard[0]}"
        assert invoke("run", "suite.yaml", "-o", out, "-q", "--format", "", "--shard", shard).exit_code == 0
        [run_dir] = list(Path(out).iterdir())
        seen.append({r["case_id"] for r in results(run_dir)})
    assert all(seen)
    assert set().union(*seen) == {f"c{i}" for i in range(40)}
    assert sum(map(len, seen)) == 40


def test_var_overrides_suite_vars_in_templates(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write("""\
        name: vars
        vars: {tone: formal}
        targets:
          - {id: bot, model: openai/fake-model, api_base: "${FAKE_BASE}", prompt: "[{{ vars.tone }}] {{ input }}"}
        cases: [{id: a, input: hi}]
        """)
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "", "--var", "tone=casual").exit_code == 0
    assert fake_openai.requests[0]["messages"][0]["content"] == "[casual] hi"
    assert json.loads((only_run_dir() / "run.json").read_text())["options"]["vars"] == {"tone": "casual"}
    bad = invoke("run", "suite.yaml", "--var", "tone")
    assert (bad.exit_code, bad.stderr) == (2, "error: --var expects KEY=VALUE, got 'tone'\n")


# --- command-line errors ----------------------------------------------------------------------


def test_run_without_a_suite() -> None:
    result = invoke("run")
    assert (result.exit_code, result.stderr) == (
        2, "error: give at least one suite file (or --resume RUN_DIR)\n  hint: llmeval run suites/example.yaml\n")


def test_unknown_report_format() -> None:
    write(suite_with(module(UPPER)))
    result = invoke("run", "suite.yaml", "--format", "html,pdf")
    assert (result.exit_code, result.stderr) == (2, "error: unknown format(s) pdf; choose from html, md, junit\n")


def test_bad_shard() -> None:
    write(suite_with(module(UPPER)))
    assert invoke("run", "suite.yaml", "--shard", "4/3").stderr == "error: --shard 4/3: I must be between 1 and N\n"
    assert invoke("run", "suite.yaml", "--shard", "x").stderr == "error: --shard expects I/N such as 2/4, got 'x'\n"


def test_unknown_option_exits_2() -> None:
    assert invoke("run", "suite.yaml", "--frobnicate").exit_code == 2


def test_resume_of_a_directory_that_is_not_a_run() -> None:
    Path("nothing").mkdir()
    result = invoke("run", "--resume", "nothing")
    assert (result.exit_code, result.stderr) == (
        2, "error: not a run directory: nothing (no run.json)\n  hint: pass a folder under runs/\n")
