"""llmeval: evaluate LLM applications with numbers you can trust.

    import llmeval
    run = llmeval.evaluate("suites/refund.yaml", model="openai/gpt-4o-mini")
    run.passed, run.summary, run.to_dataframe()

The public names live in `llmeval.api` and load on first use, so `import llmeval` (and
`llmeval --help`) imports neither pydantic nor any numeric library until a name is used."""

from __future__ import annotations

from typing import Any

from llmeval.version import __version__

__all__ = [
    "ConfigError", "DamagedRunError", "Interrupted", "LlmevalError", "LlmevalWarning", "Run", "RunError",
    "RunOptions", "RunOutcome", "Suite", "UsageError",
    "__version__", "aevaluate", "evaluate", "load_run", "load_suite", "register_metric", "run_suite", "suite",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmeval import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmeval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
