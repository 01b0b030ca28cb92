"""The public Python surface of llmeval: evaluate suites, read run directories, register metrics.
`import llmeval` exposes these names lazily (see `llmeval/__init__.py`)."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import threading
from pathlib import Path
from typing import Any

from llmeval.errors import (
    ConfigError,
    DamagedRunError,
    Interrupted,
    LlmevalError,
    LlmevalWarning,
    RunError,
    UsageError,
)
from llmeval.load.loader import Suite, load_suite
from llmeval.metrics.registry import register_metric
from llmeval.pipeline.options import RunOptions
from llmeval.pipeline.runner import RunOutcome, SuiteSource, arun_suite, run_suite
from llmeval.results.runlog import Run, load_run

__all__ = [
    "ConfigError", "DamagedRunError", "Interrupted", "LlmevalError", "LlmevalWarning", "Run", "RunError",
    "RunOptions", "RunOutcome", "Suite", "UsageError",
    "aevaluate", "evaluate", "load_run", "load_suite", "register_metric", "run_suite", "suite",
]

_FIELDS = {f.name for f in dataclasses.fields(RunOptions)} - {"progress"}
_ALIASES = {"model": "models", "vars": "variables", "target": "targets", "tag": "tags", "case": "cases",
            "format": "formats"}
_LISTS = {"targets", "tags", "cases"}


def evaluate(suite: SuiteSource, *, base_dir: str | Path | None = None, **overrides: Any) -> Run:
    """Run a suite and return its Run (summary, gates, `passed`, results, `.to_dataframe()`, `.path`).

    `suite` is a suite file, a dict in the suite-file format (relative paths resolve against
    `base_dir`, default the working directory) or a loaded Suite. `overrides` are the fields of
    RunOptions (`out_dir`, `targets`, `concurrency`, `no_cache`, `limit`, `tags`, `epochs`,
    `baseline`, `shard`, `resume`, `formats`, `variables`, `max_errors`, `cases`, `rerun_failed`,
    `quiet`) and the short forms `model=` (a model for every model target, or {target: model}),
    `vars=`, `target=`, `tag=`, `case=`, `format=`. A failed gate is `run.passed == False`; bad
    input raises ConfigError/UsageError, too many errors RunError (its `.run` is the saved run).
    Inside a running event loop (Jupyter) the run happens on a worker thread's own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # Our own loop: Ctrl-C stops the run cleanly (Interrupted, results kept) when on the main thread.
        main = threading.current_thread() is threading.main_thread()
        return asyncio.run(_evaluate(suite, base_dir, overrides, handle_signals=main))
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["run"] = asyncio.run(_evaluate(suite, base_dir, overrides, handle_signals=False))
        except BaseException as e:  # handed to the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=work, name="llmeval-evaluate")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["run"]


async def aevaluate(suite: SuiteSource, *, base_dir: str | Path | None = None, **overrides: Any) -> Run:
    """`evaluate` as a coroutine, run in the caller's event loop (`await llmeval.aevaluate(...)`)."""
    return await _evaluate(suite, base_dir, overrides, handle_signals=False)


async def _evaluate(suite: SuiteSource, base_dir: str | Path | None, overrides: dict[str, Any],
                    handle_signals: bool) -> Run:
    options = run_options(**overrides)
    try:
        outcome = await arun_suite(suite, options, base_dir=base_dir, handle_signals=handle_signals)
    except RunError as e:
        saved = getattr(e, "outcome", None)
        if saved is not None:
            e.run = load_run(saved.run_dir)  # type: ignore[attr-defined]
        raise
    return load_run(outcome.run_dir)


def run_options(**overrides: Any) -> RunOptions:
    """RunOptions from `evaluate`'s keywords (short forms accepted; strings for paths and lists)."""
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        name = _ALIASES.get(key, key)
        if name not in _FIELDS:
            close = difflib.get_close_matches(key, sorted(_FIELDS | set(_ALIASES)), n=1)
            raise UsageError(f"evaluate() got an unknown option '{key}'",
                             hint=f"did you mean '{close[0]}'?" if close else f"options: {', '.join(sorted(_FIELDS))}")
        if name in values:
            raise UsageError(f"evaluate() got '{name}' twice (once as '{key}')")
        values[name] = _coerce(name, value)
    return RunOptions(**{"quiet": True, **values})


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return value
    if name in _LISTS and isinstance(value, str):
        return [value]
    if name == "models" and isinstance(value, str):
        return {"": value}
    if name == "formats" and isinstance(value, str):
        return [f.strip() for f in value.split(",") if f.strip()]
    if name == "shard" and isinstance(value, str):
        i, _, n = value.partition("/")
        if not (i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
            raise UsageError(f"shard expects 'I/N' such as '2/4', got '{value}'")
        return int(i), int(n)
    if name == "variables":
        return {str(k): str(v) for k, v in value.items()}
    return value


def suite(path: str | Path, *, per_case: bool = False, **overrides: Any) -> Any:
    """pytest: `@llmeval.suite("suites/x.yaml")` makes a test that runs the suite and asserts its
    gates; `per_case=True` makes one test per case and target (and one for the gates). Overrides
    as for `evaluate`. The test may take the fixtures `llmeval_run` and `llmeval_result`."""
    import pytest

    return pytest.mark.llmeval(str(path), per_case=per_case, **overrides)
