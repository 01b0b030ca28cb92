"""Gates on target-level values (pass_rate, errors, cost, latency, tokens), max_drop on pass_rate
counting errored cases as failed (the same pairing as `llmeval compare`), baseline selection,
summary counts and the console's corpus line."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.decide.baseline import max_drop_gates
from llmeval.decide.compare import compare_runs
from llmeval.results.records import Result
from llmeval.results.runlog import load_run
from llmeval.results.summary import metric_summary, target_totals
from tests.runfactory import result, write_run

runner = CliRunner()
GATEABLE = "cost_usd, errors, latency_p50, latency_p95, pass_rate, tokens_completion, tokens_prompt"


def write_suite(tmp_path: Path, gates: str, n: int = 20, name: str = "suite.yaml") -> Path:
    """n cases c00..; the python target fails (raises) on the cases listed in $BROKEN, read at call time."""
    module = f"gate_bot_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""\
        import os

        def answer(case):
            if case.id in os.environ.get("BROKEN", "").split(","):
                raise RuntimeError("backend down")
            return case.expected
        """))
    cases = "\n".join(f"  - {{id: c{i:02d}, input: q{i}, expected: a{i}}}" for i in range(n))
    suite = tmp_path / name
    suite.write_text(f"name: gatefix\ndefaults: {{retries: 0}}\ntargets:\n  - {{id: bot, python: '{module}:answer'}}\n"
                     f"cases:\n{cases}\nmetrics: [exact_match]\ngates:\n{gates}")
    return suite


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suite: Path, out: str, broken: str = "",
        *args: str) -> tuple[int, dict[str, Any], Path]:
    monkeypatch.setenv("BROKEN", broken)
    res = runner.invoke(app, ["run", str(suite), "-o", str(tmp_path / out), "-q", "--format", "", *args])
    dirs = list((tmp_path / out).iterdir())
    assert len(dirs) == 1, res.output
    return res.exit_code, json.loads((dirs[0] / "run.json").read_text()), dirs[0]


@pytest.mark.parametrize("metric", ["n", "latency_ms", "tokens", "cached", "n_cases"])
def test_a_gate_on_a_reserved_name_that_is_no_gateable_value_is_a_config_error(
        tmp_path: Path, metric: str) -> None:
    suite = write_suite(tmp_path, f"  - {{metric: {metric}, min: 1}}\n")
    res = runner.invoke(app, ["run", str(suite), "-o", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    assert f"a gate cannot check '{metric}'" in res.output
    line = suite.read_text().splitlines().index(f"  - {{metric: {metric}, min: 1}}") + 1
    assert f"suite.yaml:{line}:" in res.output
    assert GATEABLE in " ".join(res.output.split())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_target_level_gates_check_latency_and_tokens_and_say_why_cost_is_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gates = ("  - {metric: latency_p95, max: 60000}\n  - {metric: latency_p50, max: 0}\n"
             "  - {metric: tokens_prompt, max: 0}\n  - {metric: errors, max: 0}\n  - {metric: cost_usd, max: 1}\n")
    suite = write_suite(tmp_path, gates, n=4)
    code, m, _ = run(tmp_path, monkeypatch, suite, "runs")
    assert code == 1
    by = {g["metric"]: g for g in m["gates"]}
    p50, p95 = m["summary"]["bot"]["latency_ms"]["p50"], m["summary"]["bot"]["latency_ms"]["p95"]
    assert by["latency_p95"]["value"] == p95 and by["latency_p95"]["passed"] is True
    assert by["latency_p50"]["value"] == p50 and p50 > 0 and by["latency_p50"]["passed"] is False
    assert by["tokens_prompt"]["value"] == m["summary"]["bot"]["tokens"]["prompt"]
    assert by["errors"]["value"] == 0 and by["errors"]["passed"] is True
    # A python target reports no cost: the gate cannot be checked, so it fails, and says why.
    assert m["summary"]["bot"]["cost_usd"] is None
    assert by["cost_usd"]["passed"] is False and by["cost_usd"]["value"] is None
    assert by["cost_usd"]["note"] == "no cost known for this target (it reports no cost per call)"


@pytest.mark.parametrize("metric", ["errors", "cost_usd", "latency_p95", "tokens_prompt"])
def test_max_drop_on_a_target_total_is_rejected_at_load_time(tmp_path: Path, metric: str) -> None:
    suite = write_suite(tmp_path, f"  - {{metric: {metric}, max_drop: 0.1}}\n")
    res = runner.invoke(app, ["run", str(suite), "-o", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    assert f"max_drop cannot be checked on '{metric}'" in res.output
    line = suite.read_text().splitlines().index(f"  - {{metric: {metric}, max_drop: 0.1}}") + 1
    assert f"suite.yaml:{line}:" in res.output


def test_max_drop_on_pass_rate_counts_errored_cases_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(tmp_path, "  - {metric: pass_rate, max_drop: 0.1}\n")
    code, base_m, base_dir = run(tmp_path, monkeypatch, suite, "base")
    assert code == 0 and base_m["summary"]["bot"]["pass_rate"] == 1.0
    broken = ",".join(f"c{i:02d}" for i in range(0, 20, 2))  # 10 of 20 cases error
    code, m, cand_dir = run(tmp_path, monkeypatch, suite, "cand", broken, "--baseline", str(base_dir))
    assert m["summary"]["bot"]["errors"] == 10 and m["summary"]["bot"]["pass_rate"] == 0.5
    gate = m["gates"][0]
    assert code == 1
    assert gate["passed"] is False and gate["details"]["verdict"] == "regression", gate["note"]
    assert gate["details"]["n_paired"] == 20 and gate["details"]["delta"] == -0.5
    assert gate["value"] == 0.5
    # `llmeval compare` pairs the same values and decides the same gate the same way.
    base, cand = load_run(base_dir), load_run(cand_dir)
    cmp = compare_runs(base, cand, resamples=2000)
    row = cmp.metric("bot", "pass_rate")
    assert row is not None and row.delta == -0.5 and row.n == 20 and row.mcnemar is not None
    assert (row.mcnemar.b, row.mcnemar.c) == (10, 0)
    again = max_drop_gates(base, cand)
    assert [g.to_dict()["details"] for g in again] == [gate["details"] | {"baseline_run": str(base_dir)}]


def _epoch_results() -> list[Result]:
    """3 cases x 2 epochs; case c2's second epoch errored."""
    out = [result(f"c{i}", "t", {"acc": 0.5 + 0.1 * i}, epoch=e) for i in range(3) for e in range(2)]
    out[-1] = result("c2", "t", {}, error=("python_error", "boom"), epoch=1)
    return out


def test_summary_counts_results_and_cases_apart() -> None:
    rs = _epoch_results()
    totals = target_totals(rs)
    assert (totals["n"], totals["n_cases"], totals["errors"]) == (6, 3, 1)
    acc = metric_summary(rs, "acc")
    assert (acc["n"], acc["n_cases"]) == (5, 3)
    assert acc["mean"] == pytest.approx((0.5 + 0.6 + 0.7) / 3)


def test_a_partial_run_is_no_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(tmp_path, "  - {metric: exact_match, max_drop: 0.1}\n", n=4)
    code, _, base_dir = run(tmp_path, monkeypatch, suite, "base")
    assert code == 0
    manifest = json.loads((base_dir / "run.json").read_text())
    (base_dir / "run.json").write_text(json.dumps({**manifest, "status": "partial"}))
    res = runner.invoke(app, ["run", str(suite), "-o", str(tmp_path / "cand"), "-q", "--baseline", str(base_dir)])
    assert res.exit_code == 2, res.output
    assert "its status is 'partial'; only a complete run can be a baseline" in res.output
    # In a folder of runs, the partial one is passed over and the gate says why it is unchecked.
    code, m, _ = run(tmp_path, monkeypatch, suite, "cand2", "", "--baseline", str(tmp_path / "base"))
    assert code == 0
    assert m["gates"][0]["note"] == ("not checked: no complete baseline run of this suite was found "
                                     "(only runs with status 'complete' qualify)")


def test_console_summary_skips_a_null_corpus_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmeval.report.console import print_summary

    rs = [result(f"c{i}", "t", {"acc": 0.5}) for i in range(3)]
    run_dir = write_run(tmp_path, "r1", rs, ["acc"])
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest["summary"]["t"]["acc"]["corpus"] = None  # what an hf_evaluate metric may report
    print_summary(manifest, str(run_dir))
    out = capsys.readouterr().out
    assert "0.500" in out and "corpus" not in out
    manifest["summary"]["t"]["acc"]["corpus"] = 0.4321
    print_summary(manifest, str(run_dir))
    assert "corpus 0.432" in capsys.readouterr().out
