"""`llmeval export`: a run's results as a table (one row per result, one column per metric)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmeval.errors import MissingDependencyError, UsageError, install_hint
from llmeval.results.runlog import load_run

FORMATS = ("csv", "parquet", "jsonl")
NESTED = ("input", "expected", "contexts", "tags")
"""Columns that may hold lists or objects: JSON text in CSV and Parquet (one type per column)."""


def results_frame(run_dir: str | Path) -> Any:
    """The run's results as a pandas DataFrame (`Run.to_dataframe()`), metric columns in suite order."""
    run = load_run(run_dir)
    try:
        df = run.to_dataframe()
    except ImportError:
        raise MissingDependencyError("export needs pandas", hint=install_hint("data")) from None
    from llmeval.report.view import metric_keys

    keys = metric_keys(run.manifest)
    for k in keys:
        if k not in df.columns:  # every result errored: the column is there, empty
            df[k] = None
    return df[[c for c in df.columns if c not in keys] + keys]


def _flatten(df: Any) -> Any:
    out = df.copy()
    for col in NESTED:
        if col in out.columns:
            out[col] = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
                        for v in out[col]]
    return out


def export_run(run_dir: str | Path, formats: list[str], out: str | Path | None = None) -> list[Path]:
    """Write `export.<format>` for each format into `out` (default: the run directory)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"unknown export format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}")
    df = results_frame(run_dir)
    target = Path(out) if out is not None else load_run(run_dir).dir
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = target / f"export.{fmt}"
        if fmt == "csv":
            _flatten(df).to_csv(path, index=False)
        elif fmt == "jsonl":
            # pandas writes NaN as null and keeps lists/objects as JSON; force_ascii=False keeps text readable.
            df.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            try:
                _flatten(df).to_parquet(path, index=False)
            except ImportError:
                raise MissingDependencyError("parquet export needs pyarrow", hint=install_hint("data")) from None
        written.append(path)
    return written
