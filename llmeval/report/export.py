"""`llmeval export`: a run's results as a table (one row per result, one column per metric)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmeval.config.files import ensure_dir
from llmeval.errors import MissingDependencyError, UsageError, install_hint
from llmeval.results.runlog import MANIFEST, load_run

FORMATS = ("csv", "parquet", "jsonl")
NESTED = ("input", "expected", "contexts", "tags")
"""Columns that may hold lists or objects: JSON text in CSV; in Parquet, lists stay lists (see `_flatten`)."""
LISTS = ("contexts", "tags")
"""Columns that are a list of strings (or null) in every row."""


def results_frame(run_dir: str | Path, allow_damaged: bool = False) -> Any:
    """The run's results as a pandas DataFrame (`Run.to_dataframe()`), metric columns in suite order."""
    run = load_run(run_dir, allow_damaged)
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


def _flatten(df: Any, keep_lists: bool = False) -> Any:
    """Nested values as JSON text (CSV); with `keep_lists` (Parquet), lists of strings stay lists:
    contexts and tags as they are, expected as a list column (one reference -> a list of one) when
    any case has several references. Other objects (a structured input) become JSON text."""
    out = df.copy()
    for col in NESTED:
        if col not in out.columns or (keep_lists and col in LISTS):
            continue
        values = list(out[col])
        if keep_lists and col == "expected" and any(isinstance(v, list) for v in values):
            out[col] = [v if v is None or isinstance(v, list) else [v] for v in values]
            continue
        out[col] = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
                    for v in values]
    return out


def export_run(run_dir: str | Path, formats: list[str], out: str | Path | None = None,
               allow_damaged: bool = False) -> list[Path]:
    """Write `export.<format>` for each format into `out` (default: the run directory); a damaged
    results.jsonl raises DamagedRunError unless `allow_damaged`."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"unknown export format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}")
    df = results_frame(run_dir, allow_damaged)
    given = Path(run_dir)
    target = Path(out) if out is not None else (given.parent if given.name == MANIFEST else given)
    ensure_dir(target)
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
                _flatten(df, keep_lists=True).to_parquet(path, index=False)
            except ImportError:
                raise MissingDependencyError("parquet export needs pyarrow", hint=install_hint("data")) from None
        written.append(path)
    return written
