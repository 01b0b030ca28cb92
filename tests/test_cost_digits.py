"""Small costs are shown with significant digits, not as $0.0000: console, summary.md, report.html."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmeval.report.view import usd
from tests.clirunhelpers import invoke, module, only_run_dir, write

ROUNDED_AWAY = re.compile(r"\$0\.0000(?!\d)")


def test_a_run_of_cheap_cases_shows_its_cost_in_every_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    mod = module("def answer(case):\n    return {'output': 'ok', 'cost_usd': 1.2e-05}\n")
    write(f"""\
name: cheap
targets:
  - {{id: bot, python: "{mod}:answer"}}
metrics: [{{contains: ok}}]
cases:
  - {{id: a, input: q}}
  - {{id: b, input: q}}
  - {{id: c, input: q}}
""")
    result = invoke("run", "suite.yaml", "-o", "runs", "--format", "html,md")
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir()
    header = next(line for line in result.output.splitlines() if "duration" in line)
    assert "cost $0.000036" in header
    [row] = [line for line in result.output.splitlines() if line.strip("│┃ ").startswith("cost")]
    assert row.strip("│┃ ").split() == ["cost", "│", "$0.000036"]
    md = (run_dir / "summary.md").read_text()
    assert "cost $0.000036" in md and not ROUNDED_AWAY.search(md)
    html = (run_dir / "report.html").read_text()
    assert html.count("$0.000036") == 2 and not ROUNDED_AWAY.search(html)  # the header and the totals row


@pytest.mark.parametrize(("cost", "text"), [
    (None, "–"), (0.0, "$0.00"), (1.2e-05, "$0.000012"), (3.6e-05, "$0.000036"), (0.002, "$0.0020"),
    (0.0123, "$0.0123"), (0.5, "$0.5000"), (12.3, "$12.30"), (1234.5, "$1,234.50"),
])
def test_costs_keep_two_significant_digits(cost: float | None, text: str) -> None:
    assert usd(cost) == text
