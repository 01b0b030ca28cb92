"""`max_drop` gates against `--baseline`: a real regression fails, noise passes, too few cases
is inconclusive (passes with a warning, fails with strict), Holm-Bonferroni over several gates."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.decide.baseline import regression_checker
from llmeval.decide.gates import evaluate_gates
from llmeval.load.loader import load_suite
from llmeval.results.records import Result, Score
from llmeval.results.runlog import Run

runner = CliRunner()
N = 200


def write_suite(tmp_path: Path, strict: bool = False) -> Path:
    """200 cases c000..c199; the python target's mistakes depend on $QA_MODE, read at call time."""
    module = f"drop_bot_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""\
        import os

        def wrong(i, mode):
            if mode == "base":
                return i % 10 == 0                    # 10% wrong
            if mode == "regressed":
                return i % 10 == 0 or i % 2 == 1      # 60% wrong
            if mode == "noise":
                return i % 10 == 1                    # a different 10%: no real change
            if mode == "tiny":
                return i in (0, 1, 2)
            raise ValueError(mode)

        def answer(case):
            i = int(case.id[1:])
            return "nope" if wrong(i, os.environ["QA_MODE"]) else case.expected
        """))
    cases = "\n".join(f"  - {{id: c{i:03d}, input: q{i}, expected: a{i}}}" for i in range(N))
    suite = tmp_path / ("strict.yaml" if strict else "suite.yaml")
    suite.write_text(f"name: drops\ntargets:\n  - {{id: bot, python: '{module}:answer'}}\ncases:\n{cases}\n"
                     f"metrics: [exact_match]\ngates:\n  - {{metric: exact_match, max_drop: 0.1"
                     f"{', strict: true' if strict else ''}}}\n")
    return suite


LAST_STDERR: list[str] = []


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suite: Path, mode: str, out: str,
        *args: str) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("QA_MODE", mode)
    result = runner.invoke(app, ["run", str(suite), "-o", str(tmp_path / out), "-q", "--format", "", *args])
    dirs = list((tmp_path / out).iterdir())
    assert len(dirs) == 1, result.output
    LAST_STDERR[:] = [result.stderr]
    return result.exit_code, json.loads((dirs[0] / "run.json").read_text())


@pytest.fixture
def baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    suite = write_suite(tmp_path)
    code, manifest = run(tmp_path, monkeypatch, suite, "base", "base")
    assert code == 0
    assert manifest["gates"][0]["note"] == "not checked: no --baseline given"
    return next((tmp_path / "base").iterdir())


def test_injected_regression_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline: Path) -> None:
    code, m = run(tmp_path, monkeypatch, tmp_path / "suite.yaml", "regressed", "cand", "--baseline", str(baseline))
    gate = m["gates"][0]
    assert code == 1
    assert gate["passed"] is False and gate["kind"] == "max_drop" and gate["threshold"] == 0.1
    d = gate["details"]
    assert d["verdict"] == "regression"
    assert d["delta"] == pytest.approx(-0.5)  # 90% right -> 40% right
    assert d["baseline_mean"] == 0.9 and d["candidate_mean"] == 0.4 and gate["value"] == 0.4
    assert d["ci95"][1] < -0.1 and d["p"] < 0.05 and d["n_paired"] == N
    assert gate["note"].startswith("regression: dropped by more than 0.1 with 95% confidence; delta -0.5000")


def test_noise_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline: Path) -> None:
    code, m = run(tmp_path, monkeypatch, tmp_path / "suite.yaml", "noise", "cand", "--baseline", str(baseline))
    gate = m["gates"][0]
    assert code == 0
    assert gate["passed"] is True and gate["details"]["verdict"] == "ok"
    assert gate["details"]["delta"] == 0.0
    assert -0.1 < gate["details"]["ci95"][0] < 0 < gate["details"]["ci95"][1]
    assert gate["note"].startswith("ok: no drop beyond 0.1; delta +0.0000")


def test_tiny_sample_is_inconclusive_and_passes_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             baseline: Path) -> None:
    # 6 cases: c001 and c002 got worse (c000 was already wrong): delta -1/3, p = (2/3)^6 ~ 0.088.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, m = run(tmp_path, monkeypatch, tmp_path / "suite.yaml", "tiny", "cand", "--limit", "6",
                  "--baseline", str(baseline))
    gate = m["gates"][0]
    assert code == 0
    d = gate["details"]
    assert d["verdict"] == "inconclusive" and gate["passed"] is True
    assert d["delta"] == pytest.approx(-1 / 3, abs=1e-6) and d["n_paired"] == 6 and d["only_in_baseline"] == 194
    assert 0.05 < d["p"] < 0.15 and d["ci95"][0] < -0.1
    # n = ((z_0.95 + z_0.8) * sd / |delta + 0.1|)^2 with sd = 0.5164 -> 30.4 -> 31 cases, 6 already run.
    assert d["more_cases_needed"] == 25
    assert "inconclusive (passes)" in gate["note"] and "about 25 more cases would settle it" in gate["note"]
    assert gate["note"].endswith("not compared: 194 case(s) only in the baseline")
    warning = next(line for line in LAST_STDERR[0].splitlines() if line.startswith("::warning"))
    lines = (tmp_path / "suite.yaml").read_text().splitlines()
    gate_line = lines.index("  - {metric: exact_match, max_drop: 0.1}") + 1
    assert warning.startswith(f"::warning file={tmp_path / 'suite.yaml'},line={gate_line},title=llmeval drops%3A "
                              "inconclusive%3A exact_match drop <= 0.1 [bot]::inconclusive (passes)")


def test_tiny_sample_fails_when_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline: Path) -> None:
    strict = write_suite(tmp_path, strict=True)
    code, m = run(tmp_path, monkeypatch, strict, "tiny", "cand", "--limit", "6", "--baseline", str(baseline))
    gate = m["gates"][0]
    assert code == 1
    assert gate["passed"] is False and gate["details"]["verdict"] == "inconclusive"
    assert "inconclusive (fails: strict)" in gate["note"]


def test_baseline_can_be_a_downloaded_artifact_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      baseline: Path) -> None:
    artifact = tmp_path / "artifact"
    (artifact / "other").mkdir(parents=True)
    (artifact / "other" / "run.json").write_text(json.dumps({"schema_version": 1, "suite": {"name": "other"}}))
    baseline.rename(artifact / baseline.name)
    code, m = run(tmp_path, monkeypatch, tmp_path / "suite.yaml", "regressed", "cand", "--baseline", str(artifact))
    assert code == 1 and m["gates"][0]["details"]["verdict"] == "regression"
    assert m["gates"][0]["details"]["baseline_run"] == str(artifact / baseline.name)


def test_artifact_folder_without_this_suite_leaves_gates_unchecked(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(tmp_path)
    artifact = tmp_path / "artifact" / "run1"
    artifact.mkdir(parents=True)
    (artifact / "run.json").write_text(json.dumps({"schema_version": 1, "suite": {"name": "other"}}))
    code, m = run(tmp_path, monkeypatch, suite, "base", "cand", "--baseline", str(tmp_path / "artifact"))
    assert code == 0
    assert m["gates"][0]["note"] == ("not checked: no complete baseline run of this suite was found "
                                     "(only runs with status 'complete' qualify)")


def test_baseline_path_without_runs_is_a_usage_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    result = runner.invoke(app, ["run", str(suite), "--baseline", str(tmp_path)])
    assert result.exit_code == 2
    assert f"--baseline {tmp_path}: no run directory there (no run.json in it or below it)" in result.output


HOLM_SUITE = """\
name: holm
targets: [{id: bot, python: 'nowhere:answer'}]
cases: [{id: x, input: x}]
metrics:
  - contains: {name: m1, value: a}
  - contains: {name: m2, value: b}
  - contains: {name: m3, value: c}
gates:
  - {metric: m1, max_drop: 0.1}
  - {metric: m2, max_drop: 0.1}
  - {metric: m3, max_drop: 0.1}
"""


def _results(values: dict[str, list[float]]) -> list[Result]:
    n = len(next(iter(values.values())))
    return [Result(f"c{i:02d}", "bot", 0, "x", None, None, "out", 1.0,
                   scores={k: Score(v[i], v[i] >= 0.5) for k, v in values.items()}) for i in range(n)]


def test_holm_bonferroni_adjusts_over_all_max_drop_gates(tmp_path: Path) -> None:
    (tmp_path / "holm.yaml").write_text(HOLM_SUITE)
    suite = load_suite(tmp_path / "holm.yaml")

    def cand(worse: int) -> list[float]:  # 40 cases: `worse` go 1 -> 0, two go 0 -> 1
        return [0.0] * worse + [1.0, 1.0] + [1.0] * (38 - worse)

    base = {k: [1.0] * 40 for k in ("m1", "m2", "m3")}
    for k, worse in (("m1", 19), ("m2", 13), ("m3", 0)):
        base[k][worse] = base[k][worse + 1] = 0.0
    candidate = {"m1": cand(19), "m2": cand(13), "m3": cand(0)}
    baseline_run = Run(tmp_path, {"run_id": "base"}, _results(base))
    results = _results(candidate)
    check = regression_checker(baseline_run, results, suite.spec)
    gates = evaluate_gates(suite.spec.gates, {}, ["bot"], check)
    by_metric = {g.metric: g for g in gates}
    m1, m2, m3 = by_metric["m1"].details, by_metric["m2"].details, by_metric["m3"].details
    assert m1["verdict"] == "regression" and m1["p"] < 0.05 / 3
    assert m1["holm_level"] == pytest.approx(0.05 / 3, abs=1e-6)
    # Alone, m2 would fail at 5%; Holm tests it at 0.025 and it is not rejected.
    assert 0.025 < m2["p"] < 0.05 and m2["holm_level"] == 0.025
    assert m2["verdict"] == "inconclusive" and by_metric["m2"].passed is True
    assert m3["verdict"] == "ok" and m3["holm_level"] == 0.05
    assert [g.passed for g in gates] == [False, True, True]


def test_cases_in_only_one_run_are_named_in_the_note(tmp_path: Path) -> None:
    (tmp_path / "holm.yaml").write_text(HOLM_SUITE)
    suite = load_suite(tmp_path / "holm.yaml")
    base = _results({k: [1.0] * 30 for k in ("m1", "m2", "m3")})
    cand = _results({k: [1.0] * 30 for k in ("m1", "m2", "m3")})[5:]
    cand += _results({k: [1.0] for k in ("m1", "m2", "m3")})
    cand[-1].case_id = "new"
    check = regression_checker(Run(tmp_path, {}, base), cand, suite.spec)
    gate = evaluate_gates(suite.spec.gates[:1], {}, ["bot"], check)[0]
    assert gate.details["n_paired"] == 25
    assert gate.note.endswith("not compared: 1 case(s) only in the candidate, 5 case(s) only in the baseline")
