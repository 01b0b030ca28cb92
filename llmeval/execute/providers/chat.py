"""One entry point for chat completions: `local/...` in-process, OpenAI-compatible endpoints on the
fast path (providers/openai_http.py, no litellm), anything else via litellm (providers/routing.py decides)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from llmeval.results.records import Completion

LocalRoute = Callable[..., Awaitable[Completion]]
_local_routes: dict[str, LocalRoute] = {}


def route_local(model: str, route: LocalRoute | None) -> None:
    """Send the completions of a `local/...` model to `route` (its model actor on a Ray cluster)
    instead of loading it in this process; None loads it here again."""
    if route is None:
        _local_routes.pop(model, None)
    else:
        _local_routes[model] = route


async def acomplete(
    model: str,
    messages: list[dict[str, Any]],
    *,
    params: dict[str, Any],
    api_base: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    logprobs: bool = False,
    top_logprobs: int = 0,
    score_tokens: list[str] | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | dict[str, Any] | None = None,
    client: str | None = None,
) -> Completion:
    """Complete a chat in OpenAI's message format (`tools` and `tool_choice` in OpenAI's schema;
    the calls the model makes come back in `Completion.tool_calls`); raises TargetCallError
    (retryable or not) on failure. `client` is the target's or judge's `client:` (None: auto)."""
    if model.startswith("local/"):
        from llmeval.errors import TargetCallError

        if tools:
            raise TargetCallError("unsupported", f"{model}: local/ models cannot call tools")
        if model in _local_routes:
            return await _local_routes[model](messages, params=params, logprobs=logprobs, top_logprobs=top_logprobs,
                                              score_tokens=score_tokens, timeout=timeout)
        from llmeval.execute.providers import local

        return await local.acomplete(model, messages, params=params, logprobs=logprobs,
                                     top_logprobs=top_logprobs, score_tokens=score_tokens, timeout=timeout)
    from llmeval.execute.providers.routing import resolve_client

    extra: dict[str, Any] = {}
    if tools:
        extra["tools"] = tools
        if tool_choice is not None:
            extra["tool_choice"] = tool_choice
    if resolve_client(model, api_base, params, client) == "openai":
        from llmeval.execute.providers import openai_http

        return await openai_http.acomplete(model, messages, params={**params, **extra}, api_base=api_base,
                                           api_key=api_key, timeout=timeout, logprobs=logprobs,
                                           top_logprobs=top_logprobs)
    from llmeval.execute.providers.litellm_api import acomplete as litellm_complete

    return await litellm_complete(model, messages, params={**params, **extra}, api_base=api_base,
                                  api_key=api_key, timeout=timeout, logprobs=logprobs, top_logprobs=top_logprobs)
