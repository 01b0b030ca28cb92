"""Renderers of a run directory: report.html, summary.md, junit.xml, compare.html/.md, the console
tables, GitHub Actions output and exports. They read results and decisions; they compute nothing."""
