"""Reports from a run directory: report.html, summary.md, junit.xml (and compare.html/.md).
Everything here reads the run directory and never calls a target or a judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FORMATS = ("html", "md", "junit")
FILES = {"html": "report.html", "md": "summary.md", "junit": "junit.xml"}


def write_reports(run_dir: Path, formats: list[str], baseline: Any = None, out_dir: Path | None = None) -> list[Path]:
    """Write the chosen reports of the run in `run_dir` (into `out_dir`, default the run directory);
    with a `baseline` Run, HTML and Markdown show deltas against it. Returns the files written."""
    from llmeval.errors import UsageError
    from llmeval.results.runlog import load_run

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UsageError(f"unknown report format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.dir
    out.mkdir(parents=True, exist_ok=True)
    comparison = None
    if baseline is not None and ("html" in formats or "md" in formats):
        from llmeval.decide.compare import compare_runs

        comparison = compare_runs(baseline, run, seed=int((run.manifest.get("stats") or {}).get("seed") or 0))
    written = []
    if "html" in formats:
        from llmeval.report.html import write_html

        written.append(write_html(run, out / FILES["html"], comparison))
    if "md" in formats:
        from llmeval.report.markdown import write_markdown

        written.append(write_markdown(run, out / FILES["md"], comparison))
    if "junit" in formats:
        from llmeval.report.junit import write_junit

        written.append(write_junit(run, out / FILES["junit"]))
    return written


def write_comparison(base: Any, cand: Any, out_dir: Path, comparison: Any) -> list[Path]:
    """Write compare.html and compare.md for a comparison of two runs into `out_dir`."""
    from llmeval.report.html import write_html
    from llmeval.report.markdown import write_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_html(cand, out_dir / "compare.html", comparison, compare_mode=True),
            write_markdown(cand, out_dir / "compare.md", comparison)]


def rerender(run_dir: Path, formats: list[str], baseline_dir: Path | None = None,
             out_dir: Path | None = None) -> list[Path]:
    """`llmeval report`: re-render a stored run's reports (with deltas against `baseline_dir`)."""
    from llmeval.results.runlog import load_run

    baseline = load_run(baseline_dir) if baseline_dir is not None else None
    return write_reports(Path(run_dir), formats, baseline=baseline, out_dir=out_dir)
