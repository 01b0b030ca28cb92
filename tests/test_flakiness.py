"""Flakiness with `--epochs N` through `llmeval run`: per-case consistency, run-level flaky shares in
run.json, flaky cases in summary.md, report.html and junit.xml, and the `max_flaky` gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.reportdata import case_data
from tests.targethelpers import module

FLIPPER = """\
    import threading

    _lock, _calls = threading.Lock(), {}

    def answer(case):
        with _lock:
            n = _calls[case.id] = _calls.get(case.id, 0) + 1
        if case.id == "flaky":
            return "YES" if n % 2 else "NO"   # passes in epochs 1 and 3, fails in epoch 2
        return "YES" if case.id == "steady" else "NO"
    """


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(gates: str = "[]", metrics: str = "[exact_match]") -> None:
    mod = module(FLIPPER)
    Path("suite.yaml").write_text(f"""\
name: flaky
targets: [{{id: py, python: "{mod}:answer"}}]
cases:
  - {{id: steady, input: a, expected: "YES"}}
  - {{id: flaky, input: b, expected: "YES"}}
  - {{id: broken, input: c, expected: "YES"}}
metrics: {metrics}
gates: {gates}
""")


def run(*args: str) -> tuple[int, str, Path]:
    res = CliRunner().invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "-j", "1", *args])
    run_dir = max(Path("runs").iterdir())
    return res.exit_code, res.output, run_dir


def test_flaky_cases_are_counted_listed_and_gated() -> None:
    write(gates="[{metric: pass_rate, max_flaky: 0.2}, {metric: exact_match, max_flaky: 0.5}]")
    code, out, run_dir = run("--epochs", "3")
    assert code == 1, out
    m = json.loads((run_dir / "run.json").read_text())
    py = m["summary"]["py"]
    assert py["flaky"] == {"rate": 0.333333, "n": 1, "of": 3, "cases": ["flaky"]}
    assert py["exact_match"]["flaky"] == {"rate": 0.333333, "n": 1, "of": 3, "spread_mean": 0.333333,
                                          "spread_max": 1.0}
    gates = [(g["name"], g["kind"], g["value"], g["passed"]) for g in m["gates"]]
    assert gates == [("pass_rate flaky <= 0.2", "max_flaky", 0.333333, False),
                     ("exact_match flaky <= 0.5", "max_flaky", 0.333333, True)]
    md = (run_dir / "summary.md").read_text()
    assert "| flaky cases | 1 of 3 (33%) |" in md
    assert "#### Flaky cases (1 of 1)\n\n| case | target | passed epochs | flaky metrics | score spread |\n" in md
    assert "| `flaky` | py | 2/3 | exact\\_match | exact\\_match 1.000 |" in md
    assert "| `broken` | 0 | py | exact\\_match = 0: output differs from expected | NO |" in md  # epoch column
    html = (run_dir / "report.html").read_text()
    assert '<section id="flaky"><h2>Flakiness across epochs</h2>' in html
    assert '<tr><td><code>flaky</code></td><td>py</td><td class="num">2/3</td><td>exact_match</td>' in html
    assert '<a href="#flaky">Flaky</a>' in html
    data = case_data(html)
    assert data["epochs"] is True and sorted({r.get("ep", 0) for r in data["rows"]}) == [0, 1, 2]
    assert '<property name="flaky_cases" value="1 of 3" />' in (run_dir / "junit.xml").read_text()


def test_max_flaky_is_not_checked_with_one_epoch() -> None:
    write(gates="[{metric: pass_rate, max_flaky: 0}]")
    code, out, run_dir = run()
    assert code == 0, out
    [gate] = json.loads((run_dir / "run.json").read_text())["gates"]
    assert (gate["passed"], gate["note"]) == (True, "not checked: needs two or more epochs (--epochs N)")
    assert "flaky" not in json.loads((run_dir / "run.json").read_text())["summary"]["py"]
    assert "Flaky" not in (run_dir / "summary.md").read_text()


def test_max_flaky_on_a_metric_without_pass_fail_fails_and_says_why() -> None:
    write(gates="[{metric: rouge1, max_flaky: 0.5}]", metrics="[{rouge: {types: [rouge1]}}]")
    code, _, run_dir = run("--epochs", "2")
    assert code == 1
    [gate] = json.loads((run_dir / "run.json").read_text())["gates"]
    assert (gate["value"], gate["passed"], gate["note"]) == (
        None, False, "no value: 'rouge1' has no pass/fail per case (give it a threshold)")
    spread = json.loads((run_dir / "run.json").read_text())["summary"]["py"]["rouge1"]["flaky"]
    assert spread == {"rate": None, "n": 0, "of": 0, "spread_mean": 0.333333, "spread_max": 1.0}


@pytest.mark.parametrize(("gate", "message"), [
    ("{metric: latency_p95, max_flaky: 0.1}",
     "suite.yaml:8:42: max_flaky cannot be checked on 'latency_p95': flakiness is a case passing in some "
     "epochs and failing in others\n  hint: use max_flaky on pass_rate (whole cases) or on a metric score\n"),
    ("{metric: pass_rate, max_flaky: 1.5}",
     "suite.yaml:8:40: gates[0].max_flaky: Input should be less than or equal to 1\n"),
])
def test_max_flaky_is_validated(gate: str, message: str) -> None:
    write(gates=f"[{gate}]")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, message)
