"""Chat completions through litellm; its errors are said in words by llmeval.execute.faults."""

from __future__ import annotations

import os
from typing import Any

from llmeval.execute import faults
from llmeval.execute.providers.openai_format import read_logprobs
from llmeval.results.messages import parse_tool_calls
from llmeval.results.records import Completion, Usage

_litellm: Any = None


def _lib() -> Any:
    """Import litellm once, with its price map read from the package (no network at import)."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_TELEMETRY", "False")
        import warnings

        import litellm

        # litellm builds a provider coroutine in a worker thread and awaits it afterwards; a call
        # cancelled in between (Ctrl-C) leaves it unawaited and Python warns on stderr.
        warnings.filterwarnings("ignore", r"coroutine '\w+\.acompletion' was never awaited", RuntimeWarning)
        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.drop_params = True
        _litellm = litellm
    return _litellm


_NO_WARM_UP_CALL = frozenset({"github_copilot", "chatgpt"})
"""OpenAI-compatible providers that start an OAuth/device flow before a call: no warm-up call."""


async def warm_up(model: str, api_base: str | None = None) -> None:
    """Do a first call's one-time work (litellm's import, then ~0.2-0.7 s of lazy imports and
    client setup that block the event loop) before any call is timed. Sends nothing anywhere:
    a mocked completion, then, for OpenAI-compatible providers, a call to a refusing loopback port."""
    import contextlib

    from llmeval.execute.warmup import refusing_url

    litellm = _lib()
    messages = [{"role": "user", "content": "warm-up"}]
    with contextlib.suppress(Exception):
        _completion(await litellm.acompletion(model=model, messages=messages, mock_response="warm-up"), litellm)
    try:
        provider = litellm.get_llm_provider(model, api_base=api_base)[1]
    except Exception:  # an unknown provider fails on its first real call, with its own message
        return
    if provider != "openai" and (provider not in litellm.openai_compatible_providers or provider in _NO_WARM_UP_CALL):
        return
    with refusing_url("/v1") as url, contextlib.suppress(Exception):
        await litellm.acompletion(model=model, messages=messages, api_base=url, api_key="llmeval-warm-up",
                                  timeout=5, num_retries=0, max_retries=0)


async def acomplete(
    model: str,
    messages: list[dict[str, Any]],
    *,
    params: dict[str, Any],
    api_base: str | None,
    api_key: str | None,
    timeout: float | None,
    logprobs: bool = False,
    top_logprobs: int = 0,
) -> Completion:
    """One litellm.acompletion call; llmeval's engine owns retries, so litellm's are off."""
    litellm = _lib()
    kwargs: dict[str, Any] = dict(params)
    if logprobs:
        kwargs["logprobs"] = True
        if top_logprobs:
            kwargs["top_logprobs"] = top_logprobs
    if api_base:
        kwargs["api_base"] = api_base
        base, _, query = api_base.partition("?")
        if query and _provider(litellm, model) == "openai":
            # litellm appends the path after the whole base (`/v1?key=.../chat/completions`): the
            # query goes on the final URL through an OpenAI client's default query instead.
            kwargs["api_base"] = base
            kwargs["client"] = _client_with_query(base, query, api_key)
    if api_key:
        kwargs["api_key"] = api_key
    if kwargs.get("tools"):
        # litellm 1.106 sends any request with tools through its MCP gateway check first, which
        # imports the optional `mcp` package and fails without it; our tools are plain functions.
        kwargs["_skip_mcp_handler"] = True
    try:
        resp = await litellm.acompletion(
            model=model, messages=messages, timeout=timeout, num_retries=0, max_retries=0, **kwargs
        )
    except Exception as e:  # litellm's hierarchy, the openai SDK and httpx beneath it: said in words
        raise faults.from_exception(e, timeout) from None
    return _completion(resp, litellm)


def _provider(litellm: Any, model: str) -> str | None:
    try:
        return str(litellm.get_llm_provider(model)[1])
    except Exception:  # an unknown provider: litellm's own call reports it
        return None


_clients: dict[tuple[str, str, str | None], tuple[Any, Any]] = {}


def _client_with_query(base: str, query: str, api_key: str | None) -> Any:
    """An AsyncOpenAI client that puts `query` on every request, one per server, key and event
    loop (an httpx pool belongs to the loop it was opened in)."""
    import asyncio
    from urllib.parse import parse_qsl

    from openai import AsyncOpenAI

    loop = asyncio.get_running_loop()
    key = (base, query, api_key)
    cached = _clients.get(key)
    if cached is None or cached[0] is not loop:
        client = AsyncOpenAI(api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none", base_url=base,
                             default_query=dict(parse_qsl(query, keep_blank_values=True)), max_retries=0)
        cached = _clients[key] = (loop, client)
    return cached[1]


def _completion(resp: Any, litellm: Any) -> Completion:
    if not getattr(resp, "choices", None):
        raise faults.no_choices()
    choice = resp.choices[0]
    text = choice.message.content or ""
    u = getattr(resp, "usage", None)
    usage = Usage(getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0)
    try:
        cost = float(litellm.completion_cost(completion_response=resp))
    except Exception:  # unknown model or price: cost is unknown, not zero
        cost = None
    try:
        calls = parse_tool_calls(getattr(choice.message, "tool_calls", None))
    except ValueError as e:
        raise faults.bad_response(f"unreadable tool calls in the answer: {e}") from None
    return Completion(text, usage, cost, read_logprobs(choice), getattr(choice, "finish_reason", None), calls)
