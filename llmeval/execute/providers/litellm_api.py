"""Chat completions through litellm, with its errors mapped to retryable or final."""

from __future__ import annotations

import os
from datetime import UTC
from typing import Any

from llmeval.errors import TargetCallError
from llmeval.results.records import Completion, TokenLogprob, Usage

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
    try:
        resp = await litellm.acompletion(
            model=model, messages=messages, timeout=timeout, num_retries=0, max_retries=0, **kwargs
        )
    except Exception as e:  # litellm raises its own hierarchy; classify once, here
        raise classify(e) from None
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
    choice = resp.choices[0]
    text = choice.message.content or ""
    u = getattr(resp, "usage", None)
    usage = Usage(getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0)
    try:
        cost = float(litellm.completion_cost(completion_response=resp))
    except Exception:  # unknown model or price: cost is unknown, not zero
        cost = None
    return Completion(text, usage, cost, _logprobs(choice), getattr(choice, "finish_reason", None))


def _logprobs(choice: Any) -> list[TokenLogprob] | None:
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return None
    content = lp.get("content") if isinstance(lp, dict) else getattr(lp, "content", None)
    if not content:
        return None
    out = []
    for t in content:
        get = t.get if isinstance(t, dict) else lambda k, _t=t: getattr(_t, k, None)
        tops = get("top_logprobs") or []
        top = {}
        for alt in tops:
            aget = alt.get if isinstance(alt, dict) else lambda k, _a=alt: getattr(_a, k, None)
            top[aget("token")] = float(aget("logprob"))
        out.append(TokenLogprob(get("token"), float(get("logprob")), top))
    return out


def classify(e: Exception) -> TargetCallError:
    """Map an exception from litellm (or httpx beneath it) to a TargetCallError."""
    name = type(e).__name__
    status = getattr(e, "status_code", None)
    message = str(e).splitlines()[0][:500] if str(e) else name
    retry_after = _retry_after(e)
    timeouts = ("Timeout", "APITimeoutError", "ReadTimeout", "ConnectTimeout", "TimeoutError")
    if name in timeouts or isinstance(e, TimeoutError):
        return TargetCallError("timeout", message, retryable=True, status=status)
    if "Missing credentials" in message or "api_key client option must be set" in message:
        # No key configured: litellm reports it as a 500, but retrying cannot help.
        return TargetCallError("auth_error", message, False, None, status)
    if "Connection error" in message or "Connection refused" in message:
        # litellm reports an unreachable server as InternalServerError with status 500.
        return TargetCallError("connection_error", message, True, None, None)
    if name in ("APIConnectionError", "ConnectError", "ServiceUnavailableError") and status in (None, 500, 503):
        return TargetCallError(
            "connection_error" if status is None else "server_error", message, True, retry_after, status
        )
    if status == 429 or name == "RateLimitError":
        return TargetCallError("rate_limited", message, True, retry_after, 429)
    if isinstance(status, int) and status >= 500:
        return TargetCallError("server_error", message, True, retry_after, status)
    if isinstance(status, int) and 400 <= status < 500:
        return TargetCallError("client_error", message, False, None, status)
    return TargetCallError(name, message, False, None, status)


def _retry_after(e: Exception) -> float | None:
    # litellm keeps the provider's headers in `litellm_response_headers`; its `response` is a
    # synthetic httpx.Response without them.
    resp = getattr(e, "response", None)
    for headers in (
        getattr(e, "litellm_response_headers", None),
        getattr(resp, "headers", None),
        getattr(e, "headers", None),
    ):
        try:
            value = headers.get("retry-after") or headers.get("Retry-After") if headers else None
        except AttributeError:
            continue
        if value is not None:
            return parse_retry_after(value)
    return None


def parse_retry_after(value: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
