"""llmeval: evaluate LLM applications with numbers you can trust.

The public names live in `llmeval.api` and load on first use, so `import llmeval` (and
`llmeval --help`) stays fast."""

from __future__ import annotations

from typing import Any

from llmeval.version import __version__

__all__ = [
    "ConfigError", "DamagedRunError", "LlmevalError", "LlmevalWarning", "Run", "RunError",
    "RunOptions", "RunOutcome", "Suite", "UsageError",
    "__version__", "load_run", "load_suite", "register_metric", "run_suite",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmeval import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmeval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
