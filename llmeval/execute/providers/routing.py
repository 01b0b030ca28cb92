"""Which client completes a model's chats: `local` (in-process), `openai` (the fast path: plain
HTTP to an OpenAI-compatible `/chat/completions`, no litellm) or `litellm` (every other provider).

A target's or judge's `client:` (or `llmeval run --client`) picks one; `auto` (the default) takes
the fast path for what litellm itself sends to an OpenAI-compatible endpoint unchanged:
`openai/<model>`, `hosted_vllm/<model>` with an api_base, and bare OpenAI chat model names
(`gpt-4o-mini`), except OpenAI's reasoning models (litellm rewrites their parameters) and calls
whose params hold litellm-only settings. Deciding imports neither litellm nor aiohttp.
"""

from __future__ import annotations

import os
from typing import Any, Literal

Client = Literal["litellm", "openai", "auto"]
CLIENTS = ("litellm", "openai", "auto")

FAST_PREFIXES = ("openai/", "hosted_vllm/", "litellm_proxy/")
"""Provider prefixes whose wire format is OpenAI's chat completions; stripped from the model name sent
(`litellm_proxy/` takes the fast path only when a suite asks for `client: openai`)."""

LITELLM_ONLY_PARAMS = frozenset({
    "mock_response", "input_cost_per_token", "output_cost_per_token", "custom_llm_provider", "api_version",
    "fallbacks", "num_retries", "caching", "drop_params", "additional_drop_params", "model_list", "aws_region_name",
    "vertex_project", "vertex_location", "thinking", "reasoning_effort", "web_search_options",
})
"""Params litellm acts on itself (or maps per provider): with one of them, `auto` keeps litellm."""


def resolve_client(model: str | None, api_base: str | None = None, params: dict[str, Any] | None = None,
                   setting: str | None = None) -> str:
    """`local`, `openai` or `litellm` for a model and its `client:` setting (None means auto)."""
    if not model or model.startswith("local/"):
        return "local"
    if setting in ("litellm", "openai"):
        return setting
    return "openai" if fast_path_fits(model, api_base, params or {}) else "litellm"


def fast_path_fits(model: str, api_base: str | None, params: dict[str, Any]) -> bool:
    """Whether litellm would send this call to an OpenAI-compatible endpoint as written."""
    if LITELLM_ONLY_PARAMS & params.keys():
        return False
    from llmeval.execute.providers import prices

    if model.startswith("openai/"):
        return not prices.is_reasoning_model(model)
    if model.startswith("hosted_vllm/"):
        base = api_base or params.get("api_base") or params.get("base_url")
        return bool(base or os.environ.get("HOSTED_VLLM_API_BASE"))
    if "/" in model:
        return False
    return prices.is_openai_chat_model(model) and not prices.is_reasoning_model(model)


def wire_model(model: str) -> str:
    """The model name the endpoint gets: the provider prefix litellm strips, stripped."""
    for prefix in FAST_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def provider_of(model: str) -> str:
    """`openai`, `hosted_vllm` or `litellm_proxy` (a bare name is OpenAI's)."""
    for prefix in FAST_PREFIXES:
        if model.startswith(prefix):
            return prefix[:-1]
    return "openai"
