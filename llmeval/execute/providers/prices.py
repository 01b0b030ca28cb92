"""The cost of an OpenAI chat completion from litellm's price map, read without importing litellm.

litellm ships its map as `model_prices_and_context_window_backup.json` inside its package, and
llmeval always has it use that file (LITELLM_LOCAL_MODEL_COST_MAP=True). Here the same file is
found with importlib's spec finder (no litellm code runs) and read once, so the fast path prices
a call exactly as `litellm.completion_cost` does for the OpenAI models (tests/test_openai_prices.py
checks every OpenAI chat model of the map): text tokens at the input price, cached prompt tokens at
the cache-read price, completion tokens at the output price; the `_above_<N>k_tokens` tier when the
prompt is over N thousand tokens; the `_priority` / `_flex` prices when the server says it served
the call in that tier.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

MAP_FILE = "model_prices_and_context_window_backup.json"
_TIERS = ("priority", "flex", "ultrafast")
_THRESHOLD = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


@cache
def price_map() -> dict[str, Any]:
    """litellm's price map as shipped in its package; {} when litellm is not installed."""
    from importlib.util import find_spec

    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for folder in spec.submodule_search_locations:
        path = Path(folder) / MAP_FILE
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else {}
    return {}


def openai_entry(model: str) -> dict[str, Any] | None:
    """The price-map entry of an OpenAI model (`gpt-4o-mini` or `openai/gpt-4o-mini`), else None."""
    name = model.removeprefix("openai/")
    prices = price_map()
    for key in (name, f"openai/{name}"):
        entry = prices.get(key)
        if isinstance(entry, dict) and entry.get("litellm_provider") == "openai":
            return entry
    return None


def is_openai_chat_model(model: str) -> bool:
    """Whether litellm knows `model` (no provider prefix) as an OpenAI chat model."""
    entry = openai_entry(model)
    return entry is not None and entry.get("mode") == "chat"


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models (o1, o3, gpt-5, ...): litellm rewrites their parameters
    (max_tokens -> max_completion_tokens, temperature dropped), so they keep litellm by default."""
    entry = openai_entry(model)
    if entry is not None and entry.get("supports_reasoning"):
        return True
    name = model.removeprefix("openai/").rsplit("/", 1)[-1]
    return re.match(r"^(o\d|gpt-5)", name) is not None


def completion_cost(models: list[str], usage: dict[str, Any], service_tier: str | None = None) -> float | None:
    """US dollars for a chat completion with `usage` (OpenAI's usage object), priced by the first
    of `models` the map has (the request's model, then the one the response names); None when
    none has a price (litellm raises there, and llmeval records an unknown cost)."""
    for model in models:
        entry = openai_entry(model) if model else None
        if entry is not None:  # an entry without a price costs 0, as in litellm
            return _cost(entry, usage, service_tier)
    return None


def _cost(entry: dict[str, Any], usage: dict[str, Any], service_tier: str | None) -> float:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    tier = service_tier if service_tier in _TIERS else None

    def price(base: str) -> float | None:
        names = [base]
        above = _tier_above(entry, prompt)
        if above:
            names = [f"{base}_{above}", base]
        if tier:
            names = [n2 for n in names for n2 in (f"{n}_{tier}", n)]
        for name in names:
            value = entry.get(name)
            if isinstance(value, (int, float)):
                return float(value)
        return None

    input_price = price("input_cost_per_token") or 0.0
    output_price = price("output_cost_per_token") or 0.0
    read_price = price("cache_read_input_token_cost")
    if read_price is None:
        read_price = input_price
    text = max(prompt - cached, 0)
    return text * input_price + cached * read_price + completion * output_price


def _tier_above(entry: dict[str, Any], prompt_tokens: int) -> str | None:
    """`above_272k_tokens` when the prompt is over that threshold (the highest one passed)."""
    best = None
    for key in entry:
        found = _THRESHOLD.match(key)
        if found and prompt_tokens > int(found[1]) * 1000 and (best is None or int(found[1]) > best):
            best = int(found[1])
    return None if best is None else f"above_{best}k_tokens"
