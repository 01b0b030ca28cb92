"""`llmeval compare` refuses runs that cannot be compared (different suites, no paired case): exit 2,
nothing written, unless --force."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.runfactory import result, write_run

runner = CliRunner()


def run_of(root: Path, run_id: str, suite: str, cases: list[str]) -> Path:
    return write_run(root, run_id, [result(c, "t", {"acc": 0.5}) for c in cases], ["acc"], suite=suite)


def test_runs_of_different_suites_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    base = run_of(tmp_path, "b", "refund-bot", ["a", "b"])
    cand = run_of(tmp_path, "c", "shipping-bot", ["a", "b"])
    before = sorted(p.name for p in cand.iterdir())
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 2, res.output
    assert res.output == (
        f"error: the runs are of different suites: 'refund-bot' ({base}) and 'shipping-bot' ({cand})\n"
        "  hint: compare two runs of one suite, or pass --force to compare them anyway\n")
    assert sorted(p.name for p in cand.iterdir()) == before

    res = runner.invoke(app, ["compare", str(base), str(cand), "--force"])
    assert res.exit_code == 0, res.output
    assert {"compare.html", "compare.md"} <= {p.name for p in cand.iterdir()}


def test_runs_with_no_paired_case_are_refused_unless_forced(tmp_path: Path) -> None:
    base = run_of(tmp_path, "b", "refund-bot", ["a", "b"])
    cand = run_of(tmp_path, "c", "refund-bot", ["x", "y", "z"])
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare", str(base), str(cand), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert res.output == (
        f"error: no (case, target) pair is in both runs: 2 result(s) only in {base}, 3 only in {cand}\n"
        "  hint: the runs share no case id on a common target id; pass --force to write the empty comparison\n")
    assert not out.exists()
    res = runner.invoke(app, ["compare", str(base), str(cand), "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert "0 paired cases" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.md"]
