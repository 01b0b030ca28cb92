"""llmeval: evaluate LLM applications with numbers you can trust.

    import llmeval
    run = llmeval.evaluate("suites/refund.yaml", model="openai/gpt-4o-mini")
    run.passed, run.summary, run.to_dataframe()

The public names live in `llmeval.api` and load on first use, so `import llmeval` (and
`llmeval --help`) imports neither pydantic nor any numeric library until a name is used."""

from __future__ import annotations

import types
from typing import Any

from llmeval import suite as _suite_package  # the package of suite loading: made callable below
from llmeval.version import __version__

__all__ = [
    "ConfigError", "DamagedRunError", "Interrupted", "LlmevalError", "LlmevalWarning", "Run", "RunError",
    "RunOptions", "RunOutcome", "Suite", "UsageError",
    "__version__", "aevaluate", "evaluate", "load_run", "load_suite", "register_metric", "run_suite", "suite",
]


class _SuitePackage(types.ModuleType):
    """`llmeval.suite` names two things: the subpackage that loads suite files, and, called, the pytest
    decorator `@llmeval.suite("suites/x.yaml")` (`llmeval.api.suite`). Python sets a subpackage as an
    attribute of its parent on import, so the package itself is made callable instead of shadowed."""

    def __call__(self, path: Any, **kwargs: Any) -> Any:
        from llmeval.api import suite

        return suite(path, **kwargs)


_suite_package.__class__ = _SuitePackage


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmeval import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmeval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
