"""The fast path: chat completions from an OpenAI-compatible `POST {api_base}/chat/completions`
over one shared aiohttp session per event loop (HTTP keep-alive), without importing litellm.

It sends what litellm sends to such an endpoint (model without its provider prefix, messages,
params as written, `extra_body` merged in, `logprobs`/`top_logprobs`), reads the answer into the
same Completion, prices it from litellm's own price map (providers/prices.py), and says every
failure with llmeval.execute.faults, so a fault reads the same on either client. llmeval's engine
owns timeouts and retries; this makes one attempt.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from llmeval.errors import TargetCallError
from llmeval.execute import faults
from llmeval.execute.providers import prices
from llmeval.execute.providers.openai_format import read_logprobs
from llmeval.execute.providers.routing import provider_of, wire_model
from llmeval.results.messages import parse_tool_calls
from llmeval.results.records import Completion, Usage

OPENAI_BASE = "https://api.openai.com/v1"
NO_KEY = ("no API key: Missing credentials. Please pass an `api_key`, `workload_identity`, `admin_api_key`, or set "
          "the `OPENAI_API_KEY` or `OPENAI_ADMIN_KEY` environment variable.")
"""What the litellm path reports for an OpenAI call with no key (its text, kept word for word)."""

NOT_SENT = frozenset({"api_key", "api_base", "base_url", "extra_headers", "headers", "organization", "extra_body",
                      "extra_query", "metadata", "timeout"})
"""Params that configure the request rather than go in its body (litellm consumes `metadata`)."""

_ENV = {  # provider: (key variables, base variables, key when none is set)
    "openai": (("OPENAI_API_KEY",), ("OPENAI_BASE_URL", "OPENAI_API_BASE"), None),
    "hosted_vllm": (("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",), "fake-api-key"),
    "litellm_proxy": (("LITELLM_PROXY_API_KEY",), ("LITELLM_PROXY_API_BASE",), "fake-api-key"),
}

_sessions: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}


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
    """One chat completion; raises TargetCallError (retryable or not) on failure."""
    import aiohttp

    url, query, headers, body = request_parts(model, messages, params, api_base, api_key, logprobs, top_logprobs)
    session = await _session()
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    try:
        async with session.post(url, data=data, headers=headers, params=query, proxy=_proxy_for(url),
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await _read(resp, timeout)
            status, resp_headers = resp.status, resp.headers
    except TargetCallError:
        raise
    except Exception as e:  # aiohttp's and the OS's errors, said in words
        raise faults.from_exception(e, timeout) from None
    if status >= 400:
        raise faults.status_error(status, resp_headers, raw)
    return read_completion(faults.json_body(status, resp_headers, raw), model)


def request_parts(model: str, messages: list[dict[str, Any]], params: dict[str, Any], api_base: str | None,
                  api_key: str | None, logprobs: bool = False, top_logprobs: int = 0
                  ) -> tuple[str, list[tuple[str, str]], dict[str, str], dict[str, Any]]:
    """URL, query parameters, headers and JSON body of the request."""
    from urllib.parse import parse_qsl

    provider = provider_of(model)
    key_vars, base_vars, default_key = _ENV[provider]
    base = api_base or params.get("api_base") or params.get("base_url") or _env(base_vars)
    if not base:
        base = OPENAI_BASE if provider == "openai" else None
    if not base:
        raise TargetCallError("client_error", f"{model}: no api_base (set `api_base:` or {base_vars[0]})", False)
    key = api_key or params.get("api_key") or _env(key_vars) or default_key
    if not key:
        raise TargetCallError("auth_error", NO_KEY, False)
    base, _, query = str(base).partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if isinstance(params.get("extra_query"), dict):
        pairs += [(str(k), str(v)) for k, v in params["extra_query"].items()]
    body: dict[str, Any] = {"model": wire_model(model), "messages": messages}
    body.update((k, v) for k, v in params.items() if k not in NOT_SENT)
    if logprobs:
        body["logprobs"] = True
        if top_logprobs:
            body["top_logprobs"] = top_logprobs
    if isinstance(params.get("extra_body"), dict):
        body.update(params["extra_body"])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
    if params.get("organization"):
        headers["OpenAI-Organization"] = str(params["organization"])
    for name in ("headers", "extra_headers"):
        if isinstance(params.get(name), dict):
            headers.update({str(k): str(v) for k, v in params[name].items()})
    return base.rstrip("/") + "/chat/completions", pairs, headers, body


def read_completion(doc: Any, model: str) -> Completion:
    """A chat completion document as a Completion; TargetCallError (bad_response) when it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise faults.not_a_completion("'choices' is missing or not a list")
    if not doc["choices"]:
        raise faults.no_choices()
    choice = doc["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise faults.not_a_completion("its first choice has no message")
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    u = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    usage = Usage(_int(u.get("prompt_tokens")), _int(u.get("completion_tokens")))
    cost = None
    if provider_of(model) == "openai":
        tier = doc.get("service_tier") if isinstance(doc.get("service_tier"), str) else None
        cost = prices.completion_cost([wire_model(model), str(doc.get("model") or "")], u, tier)
    try:
        calls = parse_tool_calls(message.get("tool_calls"))
    except ValueError as e:
        raise faults.bad_response(f"unreadable tool calls in the answer: {e}") from None
    return Completion(text, usage, cost, read_logprobs(choice), choice.get("finish_reason"), calls)


async def warm_up(model: str, api_base: str | None = None) -> None:
    """Import aiohttp and open this loop's session, then run the whole request path once against a
    refusing loopback port: nothing leaves the machine, and no call pays for it later."""
    import contextlib

    from llmeval.execute.warmup import refusing_url

    with refusing_url("/v1") as url, contextlib.suppress(Exception):
        await acomplete(model, [{"role": "user", "content": "warm-up"}], params={}, api_base=url,
                        api_key="llmeval-warm-up", timeout=5)


async def close() -> None:
    """Close the session of the running loop (it also closes by itself when an asyncio.run ends)."""
    entry = _sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[0].close()


async def _session() -> Any:
    """This event loop's session: unbounded pool (the engine bounds the calls in flight, so the pool
    holds as many keep-alive connections as the target's concurrency), no cookies. Proxies come from
    `_proxy_for` (aiohttp's trust_env would look them and ~/.netrc up in a thread on every call)."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    import aiohttp

    for old in [lp for lp in _sessions if lp.is_closed()]:
        del _sessions[old]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                                    cookie_jar=aiohttp.DummyCookieJar())
    closer = _close_at_shutdown(session)
    _sessions[loop] = (session, closer)
    await closer.__anext__()
    return session


async def _close_at_shutdown(session: Any) -> AsyncIterator[None]:
    """An async generator the loop finalises when asyncio.run ends (shutdown_asyncgens): it closes
    the session there, so no run leaves an unclosed session behind."""
    try:
        yield
    finally:
        await session.close()


async def _read(resp: Any, timeout: float | None) -> bytes:
    """The whole body; a connection that breaks before the announced length is a cut body."""
    buf = bytearray()
    try:
        async for chunk in resp.content.iter_any():
            buf += chunk
    except Exception as e:
        expected = resp.content_length
        if not isinstance(e, TimeoutError) and expected is not None and len(buf) < expected:
            raise faults.body_cut(len(buf), expected) from None
        raise faults.from_exception(e, timeout) from None
    return bytes(buf)


@functools.lru_cache(maxsize=64)
def _proxy_for(url: str) -> str | None:
    """The proxy for `url` from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY, as the openai SDK
    (httpx) takes them; read once per URL."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies_environment, proxy_bypass_environment

    parts = urlsplit(url)
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or (parts.hostname and proxy_bypass_environment(parts.hostname, proxies)):
        return None
    return proxy


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
