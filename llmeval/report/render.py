"""Which report files a run has, and writing them: report.html, summary.md, junit.xml (and
compare.html/.md) from a loaded run and, when given, a comparison computed by llmeval.decide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.config.files import ensure_dir

FORMATS = ("html", "md", "junit")
FILES = {"html": "report.html", "md": "summary.md", "junit": "junit.xml"}


def render_reports(run: Any, formats: list[str], out: Path, comparison: Any = None) -> list[Path]:
    """Write the chosen reports of a loaded Run into `out`; with a `comparison` (against a
    baseline), HTML and Markdown show deltas. Returns the files written."""
    from llmeval.errors import UsageError

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UsageError(f"unknown report format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    ensure_dir(out)
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

    ensure_dir(out_dir)
    return [write_html(cand, out_dir / "compare.html", comparison, compare_mode=True),
            write_markdown(cand, out_dir / "compare.md", comparison)]
