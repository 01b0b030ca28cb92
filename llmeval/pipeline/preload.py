"""Load a run's in-process `local/...` models before any timed call."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmeval.execute.targets.base import Target
    from llmeval.load.loader import Suite


async def preload_local_models(
    suite: Suite, targets: dict[str, Target], quiet: bool = False, load: Callable[[str], Awaitable[Any]] | None = None
) -> None:
    """Load the run's `local/...` models (targets and judges) before any timed call: a first load
    converts a GGUF file (~20 s), which must not count against a case's timeout or latency.

    `load(model)` loads one elsewhere (a model actor on a Ray cluster) instead of in this process."""
    from llmeval.config.yamlpos import position
    from llmeval.errors import ConfigError

    where: dict[str, tuple[Any, ...]] = {}  # model -> where the suite names it first
    for i, t in enumerate(suite.spec.targets):
        if t.id in targets and t.model:
            where.setdefault(t.model, ("targets", i, "model"))
    if any("judge" in m.requires for m in suite.all_metrics):
        if suite.spec.judge is not None:
            where.setdefault(suite.spec.judge.model, ("judge", "model"))
        for i, m in enumerate(suite.all_metrics):
            own = getattr(m.options, "judge", None)
            if own is not None:
                where.setdefault(own.model, ("metrics", i) if i < len(suite.metrics) else ())
    wanted = {model: loc for model, loc in where.items() if model.startswith("local/")}
    if not wanted:
        return
    from llmeval.execute.providers import local

    for model, loc in wanted.items():
        if not quiet:
            print(f"loading {model} ...", end=" ", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            # The event loop stays free meanwhile.
            lm = await (load(model) if load is not None else asyncio.to_thread(local.get_model, model))
        except BaseException as e:
            if not quiet:
                print("failed", file=sys.stderr, flush=True)
            if isinstance(e, ConfigError) and not e.path:
                raise ConfigError(e.message, str(suite.path), *position(suite.tree, loc), hint=e.hint) from None
            raise
        if not quiet:
            how = f" (converted from GGUF once, cached in {lm.source})" if lm.converted else ""
            print(f"{time.perf_counter() - started:.1f} s{how}", file=sys.stderr, flush=True)
