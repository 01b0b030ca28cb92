"""llmeval: evaluate LLM applications with numbers you can trust."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_run", "load_suite", "register_metric", "run_suite"]


def __getattr__(name: str) -> Any:
    # The public API loads lazily so `import llmeval` (and `llmeval --help`) stays fast.
    if name == "load_run":
        from llmeval.results.runlog import load_run

        return load_run
    if name == "load_suite":
        from llmeval.suite.loader import load_suite

        return load_suite
    if name == "run_suite":
        from llmeval.pipeline.runner import run_suite

        return run_suite
    if name == "register_metric":
        from llmeval.metrics.registry import register_metric

        return register_metric
    raise AttributeError(name)
