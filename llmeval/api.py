"""The public Python surface of llmeval: load and run suites, read run directories, register
metrics. `import llmeval` exposes these names lazily (see `llmeval/__init__.py`)."""

from __future__ import annotations

from llmeval.errors import ConfigError, DamagedRunError, LlmevalError, LlmevalWarning, RunError, UsageError
from llmeval.metrics.registry import register_metric
from llmeval.pipeline.options import RunOptions
from llmeval.pipeline.runner import RunOutcome, run_suite
from llmeval.results.runlog import Run, load_run
from llmeval.suite.loader import Suite, load_suite

__all__ = [
    "ConfigError", "DamagedRunError", "LlmevalError", "LlmevalWarning", "Run", "RunError",
    "RunOptions", "RunOutcome", "Suite", "UsageError",
    "load_run", "load_suite", "register_metric", "run_suite",
]
