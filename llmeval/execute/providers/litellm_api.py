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
    if api_key:
        kwargs["api_key"] = api_key
    try:
        resp = await litellm.acompletion(
            model=model, messages=messages, timeout=timeout, num_retries=0, max_retries=0, **kwargs
        )
    except Exception as e:  # litellm raises its own hierarchy; classify once, here
        raise classify(e) from None
    return _completion(resp, litellm)


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
