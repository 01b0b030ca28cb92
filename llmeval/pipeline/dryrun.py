"""`llmeval run --dry-run`: expand cases, render every request, count calls; call nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError
from llmeval.execute.cache import ResponseCache, cache_key


def dry_run(suite_path: Path, options: Any) -> dict[str, Any]:
    """Calls, cache hits and estimated prompt tokens and cost per target."""
    from llmeval.load.loader import load_suite
    from llmeval.pipeline.runner import build_targets, plan

    suite = load_suite(suite_path, options.template_variables())
    items, ids, epochs = plan(suite, options)
    targets = build_targets(suite, ids)
    cache = ResponseCache(enabled=not options.no_cache)
    rows = {
        tid: {
            "id": tid,
            "kind": targets[tid].kind,
            "calls": 0,
            "cached": 0,
            "to_call": 0,
            "est_prompt_tokens": 0,
            "est_cost_usd": None,
        }
        for tid in ids
    }
    for it in items:
        t = targets[it.target]
        row = rows[it.target]
        try:
            request = t.prepare(it.case)
        except ConfigError as e:
            raise ConfigError(f"target '{it.target}', case '{it.case.id}': {e.message}", hint=e.hint) from None
        row["calls"] += 1
        hit = t.cacheable and cache.enabled and cache.get(cache_key(t.cache_identity(request), it.epoch)) is not None
        row["cached"] += int(hit)
        if not hit:
            row["to_call"] += 1
            row["est_prompt_tokens"] += t.estimate_tokens(request)
    cache.close()
    for tid, row in rows.items():
        spec = targets[tid].spec
        if spec.price is not None:  # the suite's own price (completion assumed at max_tokens)
            max_tokens = int(spec.params.get("max_tokens", 256))
            row["est_cost_usd"] = spec.price.cost(row["est_prompt_tokens"], row["to_call"] * max_tokens)
        elif spec.model and not spec.model.startswith("local/"):
            row["est_cost_usd"] = _estimate_cost(
                spec.model, row["est_prompt_tokens"], row["to_call"], int(spec.params.get("max_tokens", 256))
            )
        elif spec.model:
            row["est_cost_usd"] = 0.0
    judge_metrics = [m.name for m in suite.metrics if "judge" in m.requires]
    return {
        "suite": suite.name,
        "path": str(suite_path),
        "cases": len({it.case.id for it in items}),
        "epochs": epochs,
        "targets": list(rows.values()),
        "judge_metrics": judge_metrics,
    }


def _estimate_cost(model: str, prompt_tokens: int, calls: int, max_tokens: int) -> float | None:
    """Upper-bound cost from litellm's bundled price map (completion assumed at max_tokens)."""
    from llmeval.execute.providers.litellm_api import _lib

    prices = _lib().model_cost
    entry = prices.get(model) or prices.get(model.split("/", 1)[-1])
    if not entry:
        return None
    return prompt_tokens * entry.get("input_cost_per_token", 0.0) + calls * max_tokens * entry.get(
        "output_cost_per_token", 0.0
    )
