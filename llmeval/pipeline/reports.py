"""Reports of a stored run: load it, compare it with a baseline when given (llmeval.decide), and
hand both to the renderers (llmeval.report). Nothing here calls a target or a judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.decide.compare import COMPARED_DETAILS, compare_runs
from llmeval.report.render import FORMATS, render_reports
from llmeval.report.view import REPORT_DETAILS
from llmeval.results.runlog import Run, load_run

READ_DETAILS = REPORT_DETAILS | COMPARED_DETAILS
"""What reports and comparisons read of each score's details: a run is loaded with these only."""

__all__ = ["FORMATS", "rerender", "write_reports", "write_stored_reports"]


def write_reports(run_dir: Path, formats: list[str], baseline: Run | None = None,
                  out_dir: Path | None = None, allow_damaged: bool = False, run: Run | None = None) -> list[Path]:
    """Write the chosen reports of the run in `run_dir` (into `out_dir`, default the run directory);
    with a `baseline` Run, HTML and Markdown show deltas against it. Returns the files written.
    `run`: that run already loaded (not read again)."""
    run = run if run is not None else load_run(run_dir, allow_damaged, READ_DETAILS)
    comparison: Any = None
    if baseline is not None and ("html" in formats or "md" in formats):
        comparison = compare_runs(baseline, run, seed=int((run.manifest.get("stats") or {}).get("seed") or 0))
    return render_reports(run, formats, Path(out_dir) if out_dir is not None else run.dir, comparison)


def write_stored_reports(run_dir: Path, formats: list[str], baseline: Run | None = None) -> list[Path]:
    """Load the run as stored (secrets scrubbed) and write its reports."""
    return write_reports(run_dir, formats, baseline=baseline)


def rerender(run_dir: Path, formats: list[str], baseline_dir: Path | None = None,
             out_dir: Path | None = None, allow_damaged: bool = False) -> list[Path]:
    """`llmeval report`: re-render a stored run's reports (with deltas against `baseline_dir`); a
    damaged results.jsonl in either raises DamagedRunError unless `allow_damaged`."""
    baseline = load_run(baseline_dir, allow_damaged, READ_DETAILS) if baseline_dir is not None else None
    return write_reports(Path(run_dir), formats, baseline=baseline, out_dir=out_dir, allow_damaged=allow_damaged)
