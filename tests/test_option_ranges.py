"""Out-of-range command options are usage errors (exit 2, no traceback, nothing written):
`view --port`, `compare --seed/--resamples` (also through the pipeline), `init` into a place that
cannot hold a project."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.errors import UsageError
from tests.runfactory import result, write_run

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, " ".join(res.stderr.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    rs = [result(c, "bot", {"m": v}) for c, v in (("a", 0.5), ("b", 0.7))]
    return write_run(tmp_path / "runs", "base", rs, ["m"]), write_run(tmp_path / "runs", "cand", rs, ["m"])


@pytest.mark.parametrize(("port", "message"), [
    ("-1", "Invalid value for '--port': Input should be greater than or equal to 0"),
    ("70000", "Invalid value for '--port': Input should be less than or equal to 65535"),
])
def test_view_refuses_a_port_out_of_range(runs: tuple[Path, Path], port: str, message: str) -> None:
    code, err = invoke("view", "runs", "--port", port, "--no-open")
    assert code == 2 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "-1"], "Invalid value for '--seed': Input should be greater than or equal to 0"),
    (["--seed", str(2**63)], "Invalid value for '--seed': Input should be less than or equal to 9223372036854775807"),
    (["--resamples", "0"], "Invalid value for '--resamples': Input should be greater than or equal to 1000"),
    (["--resamples", "999999999999"], "Invalid value for '--resamples': Input should be less than or equal to 1000000"),
])
def test_compare_refuses_a_bad_seed_or_resamples(runs: tuple[Path, Path], args: list[str], message: str) -> None:
    base, cand = runs
    code, err = invoke("compare", str(base), str(cand), *args)
    assert code == 2 and message in err, err
    assert not (cand / "compare.md").exists()


def test_compare_accepts_the_bounds(runs: tuple[Path, Path]) -> None:
    base, cand = runs
    assert invoke("compare", str(base), str(cand), "--seed", "0", "--resamples", "1000")[0] == 0


@pytest.mark.parametrize(("seed", "resamples", "message"), [
    (-1, 10_000, "seed must be a whole number from 0 to 9223372036854775807, not -1"),
    (None, 0, "resamples must be a whole number from 1000 to 1,000,000, not 0"),
    (None, 10**12, "resamples must be a whole number from 1000 to 1,000,000, not 1000000000000"),
])
def test_the_pipeline_checks_the_same_bounds(runs: tuple[Path, Path], seed: int | None, resamples: int,
                                             message: str) -> None:
    from llmeval.pipeline.compare import compare_dirs

    with pytest.raises(UsageError) as e:
        compare_dirs(*runs, seed=seed, resamples=resamples)
    assert e.value.message == message


def test_init_into_a_path_under_a_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    assert invoke("init", "afile") == (
        2, f"error: DIR afile/suites: {tmp_path / 'afile'} exists and is not a folder "
           "hint: give a folder for the output")


def test_init_where_nothing_can_be_written_is_a_usage_error() -> None:
    assert invoke("init", "/proc/llmeval-init-test") == (
        2, "error: DIR /proc/llmeval-init-test/suites: cannot create the folder (No such file or directory) "
           "hint: give a folder you can write to")


def test_init_into_an_existing_project_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "p")[0] == 0
    Path("p/suites/example.yaml").write_text("mine")
    assert invoke("init", "p") == (2, "error: p/suites/example.yaml, p/metrics/example-rubric.yaml, "
                                      "p/.github/workflows/llmeval.yml already exist(s); nothing was written "
                                      "hint: pass --force to overwrite")
    assert Path("p/suites/example.yaml").read_text() == "mine"


@pytest.mark.parametrize(("metric", "message"), [
    ("{latency: -5}", "s.yaml:5:15: latency.max_ms: Input should be greater than or equal to 0"),
    ("{latency: .nan}", "s.yaml:5:15: latency.max_ms: Input should be a finite number"),
    ("{cost: {max_usd: -1}}", "s.yaml:5:22: cost.max_usd: Input should be greater than or equal to 0"),
    ("{contains_any: []}", "s.yaml:5:20: contains_any.value: give the text to look for: an empty value would match "
                           "every output"),
    ('{contains: ""}', "s.yaml:5:16: contains.value: give the text to look for: an empty value would match every "
                       "output"),
    ('{contains_all: {value: [a, ""]}}', "s.yaml:5:28: contains_all.value: give the text to look for: an empty value "
                                         "would match every output"),
])
def test_metric_options_out_of_range_are_suite_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str,
                                                      message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out.jsonl").write_text('{"id": "a", "output": "x"}\n')
    Path("s.yaml").write_text(f"name: t\ntargets: [{{id: bot, outputs: out.jsonl}}]\ncases: [{{id: a, input: hi}}]\n"
                              f"metrics:\n  - {metric}\n")
    res = runner.invoke(app, ["validate", "s.yaml"])
    assert (res.exit_code, res.stderr) == (2, message + "\n")
