"""`llmeval run --dry-run`: expand cases, render every request, count target and judge calls,
estimate tokens and cost, warn about missing API keys; call nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError
from llmeval.execute.cache import ResponseCache, cache_key

ASSUMED_MAX_TOKENS = 256
"""Completion tokens assumed per call when `max_tokens` is not set (costs are upper bounds)."""


def dry_run(suite_path: Path, options: Any) -> dict[str, Any]:
    """Calls, cache hits and estimated tokens and cost per target and per judge metric, and the
    API keys the named providers need but the environment lacks."""
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
            row["est_cost_usd"] = spec.price.cost(row["est_prompt_tokens"], row["to_call"] * _max_tokens(spec))
        elif spec.model:
            tokens, calls = row["est_prompt_tokens"], row["to_call"]
            row["est_cost_usd"] = _estimate_cost(spec.model, tokens, calls, _max_tokens(spec))
    judges = _judge_rows(suite, items, targets)
    return {
        "suite": suite.name,
        "path": str(suite_path),
        "cases": len({it.case.id for it in items}),
        "epochs": epochs,
        "targets": list(rows.values()),
        "judge": judges,
        "judge_metrics": [j["metric"] for j in judges],
        "warnings": missing_keys(suite, ids),
    }


def _judge_rows(suite: Any, items: list[Any], targets: dict[str, Any]) -> list[dict[str, Any]]:
    """Per judge metric: its judge, the calls it makes (once per run, then per scored result), and
    estimated tokens and cost. The prompt is the metric's template plus the case's texts and an
    output of the target's max_tokens; the judge's cache may make some calls free."""
    out_chars = {tid: 4 * _max_tokens(t.spec) for tid, t in targets.items()}
    case_chars = sum(_case_chars(it.case) + out_chars[it.target] for it in items)
    rows = []
    for m in suite.metrics:
        judge = getattr(m.options, "judge", None) or suite.spec.judge
        if "judge" not in m.requires or judge is None or not hasattr(m, "judge_calls"):
            continue
        once, per_result = m.judge_calls()
        calls = len(once) + len(per_result) * len(items)
        chars = sum(map(len, once)) + sum(len(t) * len(items) + case_chars for t in per_result)
        tokens = chars // 4
        rows.append({
            "metric": m.name, "judge": judge.model, "calls": calls, "calls_once": len(once),
            "calls_per_result": len(per_result), "est_prompt_tokens": tokens,
            "est_cost_usd": judge.price.cost(tokens, calls * _max_tokens(judge)) if judge.price is not None
            else _estimate_cost(judge.model, tokens, calls, _max_tokens(judge)),
        })
    return rows


def _case_chars(case: Any) -> int:
    expected = case.expected if isinstance(case.expected, list) else [case.expected or ""]
    text = case.input if isinstance(case.input, str) else json.dumps(case.input, ensure_ascii=False)
    return len(text) + sum(map(len, expected)) + sum(map(len, case.contexts or []))


def _max_tokens(spec: Any) -> int:
    return int(spec.params.get("max_tokens") or ASSUMED_MAX_TOKENS)


def missing_keys(suite: Any, ids: list[str]) -> list[str]:
    """A warning for each API key that a named provider needs and the environment lacks (litellm's
    `validate_environment`); local/ models and specs with their own api_key need none."""
    named: list[tuple[str, Any]] = [(f"target {t.id}", t) for t in suite.spec.targets if t.id in ids and t.model]
    uses_judge = [m for m in suite.metrics if "judge" in m.requires]
    if suite.spec.judge is not None and any(getattr(m.options, "judge", None) is None for m in uses_judge):
        named.append(("the judge", suite.spec.judge))
    named += [(f"metric {m.name}'s judge", m.options.judge) for m in uses_judge
              if getattr(m.options, "judge", None) is not None]
    wanted: dict[str, list[str]] = {}
    for who, spec in named:
        if spec.model.startswith("local/") or spec.api_key:
            continue
        from llmeval.execute.providers.litellm_api import _lib

        try:
            found = _lib().validate_environment(spec.model, api_base=spec.api_base)
        except Exception:  # an unknown provider: its first call says what is wrong
            continue
        for key in found.get("missing_keys") or []:
            wanted.setdefault(key, []).append(f"{who} ({spec.model})")
    return [f"{key} is not set: needed by {', '.join(users)}" for key, users in wanted.items()]


def _estimate_cost(model: str, prompt_tokens: int, calls: int, max_tokens: int) -> float | None:
    """Upper-bound cost from litellm's bundled price map (completion assumed at max_tokens); 0 for
    local/ models, None for a model without a known price."""
    if model.startswith("local/"):
        return 0.0
    from llmeval.execute.providers.prices import price_map

    prices = price_map()  # litellm's bundled map, read without importing litellm
    entry = prices.get(model) or prices.get(model.split("/", 1)[-1])
    if not entry:
        return None
    return prompt_tokens * entry.get("input_cost_per_token", 0.0) + calls * max_tokens * entry.get(
        "output_cost_per_token", 0.0
    )
